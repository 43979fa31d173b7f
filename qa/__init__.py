"""QA: sampling, the review queue, scorecards, disputes and calibration."""
