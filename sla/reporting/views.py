"""Reporting pages and routes: the client dashboard, stored reports, CSV, drill-down, the
JSON/PDF API of the public contract, and the provider operations dashboard.

Every route reads figures through the services in metrics.py / export.py / jobs.py; every
client-facing query is narrowed to the caller's own client (``current_client_id`` or
``get_scoped_or_404``), so another client's id answers 404.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from marshmallow import Schema
from marshmallow import fields as ma
from sqlalchemy import select

from client_portal.openapi import operation
from provider_app.access import (
    api_route,
    client_only,
    current_client_id,
    get_scoped_or_404,
    roles_required,
    scoped,
)
from provider_app.errors import json_error
from provider_app.extensions import csrf, db
from provider_app.models import Client, JobProgress, TaskType
from provider_app.vocab import Role

from .charts import all_charts, data_uri
from .export import metrics_csv, report_dict, task_rows_csv
from .forms import ReportRequestForm
from .jobs import JOB_KIND, render_report_pdf, request_report
from .metrics import DRILLABLE, drill_statement, sla_report, tile_colour
from .models import StoredReport
from .operations import operations_overview
from .period import Period, parse_range

bp = Blueprint("reports", __name__, template_folder="../templates")
api_bp = Blueprint("reports_api", __name__)
csrf.exempt(api_bp)  # bearer-token callers; GET only; rate-limited in authenticate_api


def _client() -> Client:
    return db.session.get(Client, current_client_id())


def _default_range(client: Client) -> tuple[str, str]:
    """Month to date in the client's zone."""
    today = datetime.now(UTC).astimezone(ZoneInfo(client.timezone)).date()
    return today.replace(day=1).isoformat(), today.isoformat()


def _download(body, mimetype: str, filename: str) -> Response:
    return Response(body, mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def _pdf_response(pdf: bytes, filename: str) -> Response:
    return _download(pdf, "application/pdf", filename)


def _back_with_errors(errors: dict) -> Response:
    flash("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), "error")
    return redirect(url_for("reports.dashboard"))


def _filename(client: Client, period: Period, ext: str, what: str = "sla-report") -> str:
    return f"{what}-{client.code}-{period.start.isoformat()}-{period.end.isoformat()}.{ext}"


# --- JSON API (PUBLIC CONTRACT) ----------------------------------------------


def _api_period() -> tuple[Client, Period] | Response:
    start, end, errors = parse_range(request.args.get("from"), request.args.get("to"))
    if errors:
        return json_error(422, "Invalid period.", errors)
    client = _client()
    return client, Period(start, end, client.timezone)


class SlaPeriodQuerySchema(Schema):
    """The report API's query, for the OpenAPI document (``parse_range`` checks it)."""

    from_ = ma.Date(required=True, data_key="from", metadata={"description": "First day."})
    to = ma.Date(required=True, metadata={"description": "Last day (at most 366 days on)."})


@api_bp.route("/api/v1/reports/sla", methods=["GET"])
@api_route()
@operation(summary="Your SLA metrics for a period (from/to as YYYY-MM-DD, at most 366 days)",
           tag="reports", query=SlaPeriodQuerySchema, responses={200: None, 422: None})
def api_sla():
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD``: the caller's client only."""
    got = _api_period()
    if isinstance(got, Response):
        return got
    client, period = got
    return jsonify(report_dict(sla_report(client, period)))


@api_bp.route("/api/v1/reports/sla.pdf", methods=["GET"])
@api_route()
@operation(summary="The same SLA report as a PDF", tag="reports", query=SlaPeriodQuerySchema,
           responses={200: "pdf", 422: None})
def api_sla_pdf():
    """``?from=YYYY-MM-DD&to=YYYY-MM-DD``: application/pdf."""
    got = _api_period()
    if isinstance(got, Response):
        return got
    client, period = got
    return _pdf_response(render_report_pdf(sla_report(client, period)),
                         _filename(client, period, "pdf"))


# --- client portal -------------------------------------------------------------


def _portal_period(client: Client) -> tuple[Period | None, dict, dict]:
    default_from, default_to = _default_range(client)
    raw = {"from": request.args.get("from") or default_from,
           "to": request.args.get("to") or default_to}
    start, end, errors = parse_range(raw["from"], raw["to"])
    return (None if errors else Period(start, end, client.timezone)), errors, raw


@bp.route("/portal/reports", methods=["GET"])
@client_only
def dashboard():
    client = _client()
    period, errors, raw = _portal_period(client)
    if errors:
        return render_template("reports/dashboard.html", report=None, errors=errors, raw=raw,
                               client=client), 400
    report = sla_report(client, period)
    charts = {name: data_uri(svg) for name, svg in all_charts(report).items()}
    type_codes = dict(db.session.execute(select(TaskType.name, TaskType.code)).all())
    return render_template("reports/dashboard.html", report=report, errors={}, raw=raw,
                           client=client, charts=charts, tile_colour=tile_colour,
                           type_codes=type_codes)


@bp.route("/portal/reports/report.pdf", methods=["GET"])
@client_only
def period_pdf():
    client = _client()
    period, errors, _ = _portal_period(client)
    if errors:
        return _back_with_errors(errors)
    return _pdf_response(render_report_pdf(sla_report(client, period)),
                         _filename(client, period, "pdf"))


@bp.route("/portal/reports/metrics.csv", methods=["GET"])
@client_only
def export_metrics():
    client = _client()
    period, errors, _ = _portal_period(client)
    if errors:
        return _back_with_errors(errors)
    return _download(metrics_csv(sla_report(client, period)), "text/csv",
                     _filename(client, period, "csv", "sla-metrics"))


@bp.route("/portal/reports/tasks.csv", methods=["GET"])
@client_only
def export_tasks():
    client = _client()
    period, errors, _ = _portal_period(client)
    if errors:
        return _back_with_errors(errors)
    return _download(stream_with_context(task_rows_csv(client.id, period)), "text/csv",
                     _filename(client, period, "csv", "sla-tasks"))


@bp.route("/portal/reports/drill", methods=["GET"])
@client_only
def drill():
    """The tasks behind one number of the dashboard (the caller's own only)."""
    client = _client()
    period, errors, raw = _portal_period(client)
    metric = request.args.get("metric", "")
    if metric not in DRILLABLE:
        errors = {**errors, "metric": [f"One of: {', '.join(DRILLABLE)}."]}
    task_type = None
    if request.args.get("task_type"):
        task_type = db.session.scalar(select(TaskType).where(
            TaskType.code == request.args["task_type"]))
        if task_type is None:
            errors = {**errors, "task_type": ["Unknown task type."]}
    if errors:
        return render_template("reports/drill.html", errors=errors, raw=raw, pagination=None,
                               metric=metric, task_type=task_type), 400
    stmt = drill_statement(client.id, period, metric, task_type.id if task_type else None)
    pagination = db.paginate(stmt, page=request.args.get("page", 1, type=int), per_page=50,
                             error_out=False)
    return render_template("reports/drill.html", errors={}, raw=raw, pagination=pagination,
                           metric=metric, task_type=task_type, period=period)


@bp.route("/portal/reports/stored", methods=["GET", "POST"])
@client_only
def stored():
    """Stored reports (monthly and requested); a client admin may request one."""
    client = _client()
    form = ReportRequestForm()
    if request.method == "POST":
        if not current_user.has_role(Role.CLIENT_ADMIN):
            abort(403, "Only a client admin can request a report.")
        if form.validate_on_submit():
            job = request_report(client, form.start.data, form.end.data, current_user)
            return redirect(url_for("reports.job", job_id=job.id))
    page = request.args.get("page", 1, type=int)
    stmt = scoped(select(StoredReport), StoredReport).order_by(
        StoredReport.created_at.desc(), StoredReport.id.desc())
    pagination = db.paginate(stmt, page=page, per_page=25, error_out=False)
    status = 400 if form.errors else 200
    return render_template("reports/stored.html", pagination=pagination, form=form,
                           client=client), status


@bp.route("/portal/reports/stored/<public_id>.pdf", methods=["GET"])
@client_only
def download(public_id: str):
    report = get_scoped_or_404(StoredReport, public_id)
    return _pdf_response(report.pdf, report.filename)


@bp.route("/portal/reports/jobs/<job_id>", methods=["GET"])
@client_only
def job(job_id: str):
    progress = db.session.scalar(scoped(select(JobProgress).where(
        JobProgress.id == job_id, JobProgress.kind == JOB_KIND), JobProgress))
    if progress is None:
        abort(404)
    report = None
    if progress.result.get("report_id"):
        report = db.session.scalar(scoped(select(StoredReport).where(
            StoredReport.public_id == progress.result["report_id"]), StoredReport))
    return render_template("reports/job.html", job=progress, report=report)


# --- provider operations dashboard ---------------------------------------------


@bp.route("/reports/operations", methods=["GET"])
@roles_required(Role.ADMIN, Role.TEAM_LEAD)
def operations():
    """All clients side by side, today's intake vs capacity, queues at risk, QA by person."""
    raw_from = request.args.get("from")
    raw_to = request.args.get("to")
    today = date.today()
    start, end, errors = parse_range(raw_from or today.replace(day=1).isoformat(),
                                     raw_to or today.isoformat())
    if errors:
        return render_template("reports/operations.html", overview=None, errors=errors,
                               raw={"from": raw_from, "to": raw_to}), 400
    overview = operations_overview(start, end)
    current_app.logger.debug("operations dashboard %s..%s", start, end)
    return render_template("reports/operations.html", overview=overview, errors={},
                           raw={"from": start.isoformat(), "to": end.isoformat()})
