"""The starting task catalogue (PRODUCT.md): tiers, skills, intake fields, SOPs, targets.

Intake fields are data: ``{"name", "label", "type", "required", ...}`` with types
text, textarea, date, money, state, enum, policy_number, bool, email, int. One
definition drives the portal form, the API schema and CSV validation.
"""

from __future__ import annotations

LINES = ["GL", "AUTO", "WC", "PROP", "UMB", "PROF"]


def f(name: str, label: str, type_: str = "text", required: bool = False, **extra) -> dict:
    return {"name": name, "label": label, "type": type_, "required": required, **extra}


POLICY = f("policy_number", "Policy number", "policy_number", True)
INSURED = f("insured_name", "Named insured", "text", True, max_length=200)
EFFECTIVE = f("effective_date", "Effective date", "date", True)
NOTES = f("notes", "Notes for the specialist", "textarea", False, max_length=4000)

TASK_TYPES: list[dict] = [
    {
        "code": "COI", "name": "Certificate of insurance (ACORD 25)", "tier": "BPO",
        "weight": 1, "licence_line": None, "hours": 4, "skills": {"coi": 2},
        "fields": [
            INSURED,
            f("holder_name", "Certificate holder name", "text", True, max_length=200),
            f("holder_address", "Certificate holder address", "textarea", True, max_length=500),
            f("policy_numbers", "Policy numbers (comma separated)", "text", True, max_length=500),
            f("lines", "Lines of coverage", "multi", True, choices=LINES),
            f("additional_insured", "Additional insured requested", "bool"),
            f("waiver_of_subrogation", "Waiver of subrogation requested", "bool"),
            f("description_of_operations", "Description of operations", "textarea",
              max_length=2000),
        ],
        "steps": ["Confirm coverage in the AMS", "Check holder details", "Apply AI / WOS wording",
                  "Issue certificate and attach"],
    },
    {
        "code": "ENDT_ADMIN", "name": "Administrative endorsement", "tier": "BPO", "weight": 1,
        "licence_line": None, "hours": 8, "skills": {"endorsement": 2},
        "fields": [POLICY, INSURED, EFFECTIVE,
                   f("change_kind", "Change", "enum", True,
                     choices=["address", "driver", "vehicle", "mortgagee", "other"]),
                   f("change_detail", "Details of the change", "textarea", True,
                     max_length=2000)],
        "steps": ["Verify requester authority", "Key the change", "Request carrier confirmation"],
    },
    {
        "code": "ENDT_COV", "name": "Coverage-changing endorsement", "tier": "KPO", "weight": 2,
        "licence_line": "P&C", "hours": 8, "skills": {"endorsement": 3, "coverage": 3},
        "fields": [POLICY, INSURED, EFFECTIVE,
                   f("coverage_change", "Coverage change requested", "textarea", True,
                     max_length=2000),
                   f("new_limit", "New limit", "money")],
        "steps": ["Review current coverage", "Confirm premium impact", "Submit to carrier",
                  "Check returned endorsement"],
    },
    {
        "code": "POLCHK", "name": "Policy checking", "tier": "KPO", "weight": 3,
        "licence_line": None, "hours": 16, "skills": {"policy_check": 3},
        "fields": [POLICY, INSURED, EFFECTIVE, f("line", "Line of business", "enum", True,
                                                 choices=LINES)],
        "steps": ["Compare binder to policy", "Compare application to policy",
                  "List discrepancies", "Draft carrier correction request"],
    },
    {
        "code": "LOSSRUN", "name": "Loss run request", "tier": "BPO", "weight": 1,
        "licence_line": None, "hours": 8, "skills": {"loss_run": 1},
        "fields": [INSURED, f("carrier", "Carrier", "text", True, max_length=200),
                   f("policy_numbers", "Policy numbers", "text", True, max_length=500),
                   f("years", "Years requested", "int", True, min=1, max=10)],
        "steps": ["Request from carrier portal", "Chase if not received", "Send to client"],
    },
    {
        "code": "RENEWAL", "name": "Renewal preparation", "tier": "KPO", "weight": 3,
        "licence_line": None, "hours": 40, "skills": {"renewal": 3, "coverage": 2},
        "fields": [POLICY, INSURED, f("expiry_date", "Expiry date", "date", True), NOTES],
        "steps": ["Collect exposures", "Prepare submission", "Market summary"],
    },
    {
        "code": "SUBMIT", "name": "Submission intake / underwriting file", "tier": "KPO",
        "weight": 2, "licence_line": None, "hours": 8, "skills": {"underwriting": 3},
        "fields": [INSURED, f("line", "Line of business", "enum", True, choices=LINES),
                   f("broker", "Broker", "text", True, max_length=200), NOTES],
        "steps": ["Clear the submission", "Extract exposures", "Build the UW file"],
    },
    {
        "code": "FNOL", "name": "First notice of loss intake", "tier": "BPO", "weight": 1,
        "licence_line": None, "hours": 4, "skills": {"claims": 1},
        "fields": [POLICY, INSURED, f("loss_date", "Date of loss", "date", True),
                   f("loss_description", "What happened", "textarea", True, max_length=4000),
                   f("reporter_email", "Reporter e-mail", "email")],
        "steps": ["Verify policy in force", "Record loss details", "Open claim with carrier"],
    },
    {
        "code": "CLAIMDOC", "name": "Claims document review", "tier": "KPO", "weight": 2,
        "licence_line": None, "hours": 16, "skills": {"claims": 3},
        "fields": [f("claim_number", "Claim number", "text", True, max_length=50), NOTES],
        "steps": ["Index documents", "Summarise findings", "Flag coverage issues"],
    },
    {
        "code": "BDX", "name": "Bordereaux validation", "tier": "KPO", "weight": 2,
        "licence_line": None, "hours": 24, "skills": {"bordereaux": 3},
        "fields": [f("period", "Bordereau period (YYYY-MM)", "text", True, max_length=7,
                     pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
                   f("coverholder", "Coverholder", "text", True, max_length=200)],
        "steps": ["Check mandatory columns", "Reconcile premium", "Report exceptions"],
    },
    {
        "code": "INDEX", "name": "Document indexing", "tier": "BPO", "weight": 1,
        "licence_line": None, "hours": 8, "skills": {"indexing": 1},
        "fields": [f("document_count", "Number of documents", "int", True, min=1, max=10000),
                   NOTES],
        "steps": ["Classify each document", "Attach to the right policy"],
    },
    {
        "code": "DATA", "name": "Data entry", "tier": "BPO", "weight": 1,
        "licence_line": None, "hours": 8, "skills": {"data_entry": 1},
        "fields": [f("description", "What to enter", "textarea", True, max_length=4000)],
        "steps": ["Key the data", "Self-check totals"],
    },
    {
        "code": "CANCEL", "name": "Cancellation / reinstatement", "tier": "BPO", "weight": 1,
        "licence_line": None, "hours": 8, "skills": {"endorsement": 1},
        "fields": [POLICY, INSURED, EFFECTIVE,
                   f("action", "Action", "enum", True, choices=["cancel", "reinstate"]),
                   f("reason", "Reason", "textarea", True, max_length=1000)],
        "steps": ["Confirm authority", "Process with carrier", "Confirm to client"],
    },
]

SCORECARD = [
    {"section": "Accuracy", "text": "Named insured and policy details match the source",
     "weight": 3, "critical": True},
    {"section": "Accuracy", "text": "Limits, dates and forms are correct", "weight": 3,
     "critical": True},
    {"section": "Process", "text": "SOP steps followed and documented", "weight": 2},
    {"section": "Process", "text": "Client instructions followed", "weight": 2, "allow_na": True},
    {"section": "Presentation", "text": "Output complete and clearly written", "weight": 1},
]

PRIORITY_FACTOR = {"low": 2.0, "normal": 1.0, "high": 0.5, "urgent": 0.25}
