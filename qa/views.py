"""QA pages: the review queue and scorecard, findings and disputes, lot-sampling strata,
calibration and the QA figures. Views read input and render; the rules live in the
service modules (reviews, disputes, lots, calibration, metrics)."""

from __future__ import annotations

from datetime import date, timedelta

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select, true
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.exc import StaleDataError
from wtforms import SelectChoice

from provider_app.access import get_scoped_or_404, roles_required, scoped, visible_client_ids
from provider_app.extensions import db
from provider_app.models import Client, Task, User, UserRole
from provider_app.vocab import Role, Status

from . import calibration as cal
from .disputes import decide_dispute, dispute_deadline, raise_dispute, why_not_disputable
from .forms import (
    ActionForm,
    CalibrationForm,
    DecideForm,
    DisputeForm,
    FiguresForm,
    ResumeForm,
    ReviewForm,
)
from .lots import resume_stratum
from .metrics import quality_figures
from .models import (
    CalibrationSession,
    LotInspection,
    QaDispute,
    QaItemResult,
    QaReview,
    QaSamplingDecision,
    SamplingStratum,
)
from .reviews import (
    QaError,
    StaleReviewError,
    claim,
    complete_review,
    findings_for,
    open_claims,
    queue_stmt,
    release,
    rework_candidates,
)
from .scorecard import ERROR_CATEGORIES, ScorecardError, field_name, parse_entries

bp = Blueprint("qa", __name__, template_folder="templates")

REVIEWERS = (Role.QA_REVIEWER, Role.TEAM_LEAD)
LEADS = (Role.TEAM_LEAD, Role.ADMIN)
RECENT_LOTS = 5


@bp.app_context_processor
def _qa_helpers() -> dict:
    """``qa_findings(task)`` for the findings partial other areas include."""
    return {"qa_findings": findings_for, "qa_error_categories": ERROR_CATEGORIES,
            "qa_dispute_problem": why_not_disputable, "qa_dispute_deadline": dispute_deadline,
            "qa_field": field_name}


# --- queue, claim, scorecard ----------------------------------------------------------------


@bp.route("/")
@roles_required(*REVIEWERS)
def queue():
    """Tasks waiting for review, by due time; never the reviewer's own work (four eyes)."""
    page = db.paginate(queue_stmt(current_user), per_page=50, error_out=False)
    claims = open_claims([t.id for t in page.items])
    return render_template("qa/queue.html", page=page, claims=claims, form=ActionForm())


@bp.route("/tasks/<public_id>/claim", methods=["POST"])
@roles_required(*REVIEWERS)
def claim_task(public_id: str):
    task = get_scoped_or_404(Task, public_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        review = claim(task, current_user)
    except QaError as exc:
        flash(str(exc), "error")
        return redirect(url_for("qa.queue"))
    return redirect(url_for("qa.review", public_id=review.public_id))


def _own_open_review(public_id: str) -> QaReview:
    review = get_scoped_or_404(QaReview, public_id, options=[joinedload(QaReview.task)])
    if review.calibration_id is not None:
        abort(404)
    if review.reviewer_id != current_user.id and not current_user.has_role(*LEADS):
        abort(403)
    return review


@bp.route("/reviews/<public_id>", methods=["GET", "POST"])
@roles_required(*REVIEWERS)
def review(public_id: str):
    """Score a claimed task against the scorecard of the SOP version it was worked under."""
    review = _own_open_review(public_id)
    if review.completed_at is not None:
        return redirect(url_for("qa.task_findings", public_id=review.task.public_id))
    form = ReviewForm()
    candidates = rework_candidates(review.task) if current_user.has_role(*LEADS) else []
    form.rework_to.choices = [SelectChoice("", "the same specialist")] + [
        SelectChoice(str(u.id), u.name or u.email) for u in candidates
    ]
    errors: dict[str, list[str]] = {}
    status = 200
    if request.method == "POST":
        status = 400
        if form.validate_on_submit():
            try:
                entries = parse_entries(review.sop.scorecard, request.form)
                rework_to = db.session.get(User, int(form.rework_to.data)) \
                    if form.rework_to.data else None
                complete_review(review, current_user, entries, comments=form.comments.data or "",
                                expected_version=form.version.data, rework_to=rework_to)
                flash(f"Review saved: {review.score:.0%}, "
                      f"{'pass' if review.passed else 'fail - sent to rework'}.", "success")
                return redirect(url_for("qa.queue"))
            except ScorecardError as exc:
                errors = exc.errors
            except (StaleReviewError, StaleDataError):
                db.session.rollback()  # a failed versioned flush leaves nothing to keep
                flash("This review changed since you opened it; reload and retry.", "error")
                status = 409
            except QaError as exc:
                errors = exc.errors
                flash(str(exc), "error")
        if "csrf_token" in form.errors:
            flash("The form expired; reload the page and try again.", "error")
        errors = {**form.errors, **errors}
    else:
        form.version.data = review.version
    return render_template("qa/review.html", review=review, task=review.task, form=form,
                           errors=errors, values=request.form), status


@bp.route("/reviews/<public_id>/release", methods=["POST"])
@roles_required(*REVIEWERS)
def release_review(public_id: str):
    review = _own_open_review(public_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        release(review, current_user)
    except QaError as exc:
        flash(str(exc), "error")
    return redirect(url_for("qa.queue"))


# --- findings and disputes ------------------------------------------------------------------


@bp.route("/tasks/<public_id>")
@roles_required(Role.SPECIALIST, Role.QA_REVIEWER, Role.TEAM_LEAD, Role.ADMIN)
def task_findings(public_id: str):
    """A task's QA history: sampling decisions, reviews, findings and disputes."""
    task = get_scoped_or_404(Task, public_id)
    if not current_user.has_role(Role.QA_REVIEWER, *LEADS) and not _is_maker(task):
        abort(404)
    return render_template("qa/task.html", task=task, decisions=_decisions(task))


def _decisions(task: Task) -> list[QaSamplingDecision]:
    return list(db.session.scalars(
        select(QaSamplingDecision).where(QaSamplingDecision.task_id == task.id)
        .order_by(QaSamplingDecision.decided_at)
    ))


def _is_maker(task: Task) -> bool:
    return task.assignee_id == current_user.id or bool(db.session.scalar(
        select(func.count()).select_from(QaReview).where(
            QaReview.task_id == task.id, QaReview.maker_id == current_user.id)
    ))


def _scoped_item_or_404(public_id: str) -> QaItemResult:
    stmt = (
        select(QaItemResult).join(QaReview, QaReview.id == QaItemResult.review_id)
        .where(QaItemResult.public_id == public_id)
    )
    item = db.session.scalar(scoped(stmt, QaReview))
    if item is None:
        abort(404)
    return item


@bp.route("/findings/<public_id>/dispute", methods=["POST"])
@roles_required(Role.SPECIALIST)
def dispute_finding(public_id: str):
    """The maker disputes one finding; errors come back on the task's QA page."""
    item = _scoped_item_or_404(public_id)
    task = item.review.task
    form = DisputeForm()
    errors: dict[str, list[str]] = {}
    if form.validate_on_submit():
        try:
            raise_dispute(item, current_user, form.reason.data)
            flash("Dispute raised; a lead will decide it.", "success")
            return redirect(url_for("qa.task_findings", public_id=task.public_id))
        except QaError as exc:
            flash(str(exc), "error")
            errors = exc.errors
    else:
        errors = form.errors
    return render_template("qa/task.html", task=task, decisions=_decisions(task),
                           dispute_errors={item.public_id: errors}), 400


@bp.route("/disputes")
@roles_required(*LEADS)
def disputes():
    stmt = scoped(
        select(QaDispute)
        .options(
            joinedload(QaDispute.item_result).joinedload(QaItemResult.review)
            .joinedload(QaReview.task),
            joinedload(QaDispute.item_result).joinedload(QaItemResult.item),
            joinedload(QaDispute.raised_by),
        )
        .order_by((QaDispute.status == "open").desc(), QaDispute.created_at.desc()),
        QaDispute,
    )
    page = db.paginate(stmt, per_page=50, error_out=False)
    return render_template("qa/disputes.html", page=page, form=DecideForm())


@bp.route("/disputes/<public_id>/decide", methods=["POST"])
@roles_required(*LEADS)
def decide(public_id: str):
    dispute = get_scoped_or_404(QaDispute, public_id)
    form = DecideForm()
    if not form.validate_on_submit():
        for messages in form.errors.values():
            for message in messages:
                flash(message, "error")
        return render_template("qa/disputes.html", page=None, single=dispute, form=form), 400
    try:
        decide_dispute(dispute, current_user, form.outcome.data, form.note.data,
                       expected_version=form.version.data)
    except StaleReviewError as exc:
        flash(str(exc), "error")
        return render_template("qa/disputes.html", page=None, single=dispute, form=form), 409
    except QaError as exc:
        flash(str(exc), "error")
        return render_template("qa/disputes.html", page=None, single=dispute, form=form), 400
    flash(f"Dispute {dispute.status}.", "success")
    return redirect(url_for("qa.disputes"))


# --- lot sampling strata --------------------------------------------------------------------


@bp.route("/sampling")
@roles_required(*LEADS)
def sampling():
    """Each stratum's current severity, its recent lots and why it switched."""
    return _sampling_page(ResumeForm())


def _sampling_page(form: ResumeForm, status: int = 200):
    strata = db.session.scalars(scoped(
        select(SamplingStratum)
        .options(joinedload(SamplingStratum.client), joinedload(SamplingStratum.task_type))
        .order_by(SamplingStratum.stopped.desc(), SamplingStratum.updated_at.desc()),
        SamplingStratum,
    )).all()
    ranked = (
        select(LotInspection.id, func.row_number().over(
            partition_by=LotInspection.stratum_id, order_by=LotInspection.started_at.desc(),
        ).label("rank"))
        .where(LotInspection.stratum_id.in_([s.id for s in strata] or [-1]))
        .subquery()
    )
    recent: dict[int, list[LotInspection]] = {s.id: [] for s in strata}
    for inspection in db.session.scalars(
        select(LotInspection).join(ranked, ranked.c.id == LotInspection.id)
        .where(ranked.c.rank <= RECENT_LOTS).options(joinedload(LotInspection.lot))
        .order_by(LotInspection.started_at.desc())
    ):
        recent[inspection.stratum_id].append(inspection)
    return render_template("qa/sampling.html", strata=strata, recent=recent,
                           form=form), status


@bp.route("/sampling/<public_id>/resume", methods=["POST"])
@roles_required(*LEADS)
def resume(public_id: str):
    stratum = get_scoped_or_404(SamplingStratum, public_id)
    form = ResumeForm()
    if form.validate_on_submit():
        try:
            resume_stratum(stratum, current_user, form.note.data)
            flash("Lot sampling resumed on tightened inspection.", "success")
            return redirect(url_for("qa.sampling"))
        except ValueError as exc:
            flash(str(exc), "error")
    for messages in form.errors.values():
        for message in messages:
            flash(message, "error")
    return _sampling_page(form, 400)


# --- QA figures -----------------------------------------------------------------------------


@bp.route("/figures")
@roles_required(*LEADS)
def figures():
    """Accuracy, critical fails, first-pass yield and dispute rate over a period."""
    scope = visible_client_ids()
    clients = db.session.scalars(
        select(Client).where(Client.id.in_(scope) if scope is not None else true())
        .order_by(Client.code)
    ).all()
    form = FiguresForm(request.args)
    form.client.choices = [SelectChoice("", "all clients")] + [
        SelectChoice(c.code, c.code) for c in clients
    ]
    rows, status = [], 200
    if form.validate():
        end = form.end.data or date.today()
        start = form.start.data or end - timedelta(days=29)
        form.start.data, form.end.data = start, end
        client = next((c for c in clients if c.code == form.client.data), None)
        rows = quality_figures(start, end, group_by=form.group_by.data,
                               client_id=client.id if client else None, client_ids=scope)
    else:
        status = 400
    return render_template("qa/figures.html", form=form, rows=rows), status


# --- calibration ----------------------------------------------------------------------------


def _session_or_404(public_id: str) -> CalibrationSession:
    session = db.session.scalar(
        select(CalibrationSession).where(CalibrationSession.public_id == public_id)
    )
    if session is None or not (cal.is_participant(session, current_user)
                               or current_user.has_role(Role.ADMIN)):
        abort(404)
    return session


def _calibration_form() -> CalibrationForm:
    form = CalibrationForm()
    recent = db.session.scalars(scoped(
        select(Task).where(Task.status == Status.COMPLETED)
        .options(joinedload(Task.client), joinedload(Task.task_type))
        .order_by(Task.completed_at.desc()).limit(60),
        Task,
    )).all()
    form.tasks.choices = [
        SelectChoice(t.public_id,
                     f"{t.client.code} · {t.task_type.code} · {t.external_ref or t.public_id[:8]}")
        for t in recent
    ]
    people = db.session.scalars(
        select(User).join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role.in_([Role.QA_REVIEWER, Role.TEAM_LEAD]), User.active.is_(True),
               User.id != current_user.id)
        .distinct().order_by(User.name)
    ).all()
    form.reviewers.choices = [SelectChoice(str(u.id), u.name or u.email) for u in people]
    return form


@bp.route("/calibration", methods=["GET", "POST"])
@roles_required(Role.QA_REVIEWER, *LEADS)
def calibrations():
    mine = select(CalibrationSession).order_by(CalibrationSession.created_at.desc()).limit(100)
    sessions = [s for s in db.session.scalars(mine.options(joinedload(CalibrationSession.lead)))
                if current_user.has_role(Role.ADMIN) or cal.is_participant(s, current_user)]
    form = _calibration_form() if current_user.has_role(Role.TEAM_LEAD) else None
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if form is None:
            abort(403)
        if form.validate_on_submit():
            tasks = db.session.scalars(scoped(
                select(Task).where(Task.public_id.in_(form.tasks.data or [""])), Task)).all()
            reviewers = db.session.scalars(select(User).where(
                User.id.in_([int(i) for i in form.reviewers.data or []]))).all()
            try:
                session = cal.create_session(current_user, form.title.data, tasks, reviewers)
                return redirect(url_for("qa.calibration", public_id=session.public_id))
            except QaError as exc:
                errors = exc.errors
        else:
            errors = form.errors
        return render_template("qa/calibrations.html", sessions=sessions, form=form,
                               errors=errors), 400
    return render_template("qa/calibrations.html", sessions=sessions, form=form, errors=errors)


@bp.route("/calibration/<public_id>")
@roles_required(Role.QA_REVIEWER, *LEADS)
def calibration(public_id: str):
    session = _session_or_404(public_id)
    tasks = cal.session_tasks(session)
    done = {r.task_id for r in cal.reviews_of(session, current_user.id)}
    lead_view = session.lead_id == current_user.id or current_user.has_role(Role.ADMIN)
    results = cal.results(session) if lead_view or session.closed_at else None
    return render_template("qa/calibration.html", session=session, tasks=tasks, done=done,
                           results=results, form=ActionForm(), lead_view=lead_view)


@bp.route("/calibration/<public_id>/tasks/<task_id>", methods=["GET", "POST"])
@roles_required(Role.QA_REVIEWER, *LEADS)
def calibration_score(public_id: str, task_id: str):
    """Blind scoring: the file and an empty scorecard, never anyone else's scores."""
    session = _session_or_404(public_id)
    task = get_scoped_or_404(Task, task_id, options=[selectinload(Task.sop)])
    if task.id not in session.task_ids or not cal.is_participant(session, current_user):
        abort(404)
    mine = next(iter(r for r in cal.reviews_of(session, current_user.id)
                     if r.task_id == task.id), None)
    form = ActionForm()
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                entries = parse_entries(task.sop.scorecard, request.form)
                cal.score_task(session, task, current_user, entries,
                               request.form.get("comments", "")[:4000])
                flash("Scoring saved.", "success")
                return redirect(url_for("qa.calibration", public_id=session.public_id))
            except ScorecardError as exc:
                errors = exc.errors
            except QaError as exc:
                flash(str(exc), "error")
        return render_template("qa/calibration_score.html", session=session, task=task,
                               form=form, errors=errors, values=request.form), 400
    values = {}
    for result in (mine.items if mine else []):
        item = result.item
        values[field_name(item, "result")] = result.result
        values[field_name(item, "category")] = result.error_category or ""
        values[field_name(item, "comment")] = result.comment
    return render_template("qa/calibration_score.html", session=session, task=task, form=form,
                           errors=errors, values=values)


@bp.route("/calibration/<public_id>/close", methods=["POST"])
@roles_required(*LEADS)
def calibration_close(public_id: str):
    session = _session_or_404(public_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        cal.close_session(session, current_user)
        flash("Session closed; participants can now see the results.", "success")
    except QaError as exc:
        flash(str(exc), "error")
    return redirect(url_for("qa.calibration", public_id=session.public_id))
