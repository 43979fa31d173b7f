"""Client-admin portal pages for webhooks: endpoints, their secrets, the delivery log.

Only ``client_admin`` users reach these pages; every lookup is scoped to their client, so
another client's endpoint or delivery id answers 404. Secrets are shown once, on the page
that created or rotated them, with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from wtforms import SelectChoice, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from provider_app.access import get_scoped_or_404, roles_required, scoped
from provider_app.extensions import db
from provider_app.integrations import delivery as deliveries
from provider_app.integrations import webhooks
from provider_app.integrations.models import DELIVERY_STATUSES, WebhookDelivery, WebhookEndpoint
from provider_app.vocab import Role

bp = Blueprint("webhooks", __name__, template_folder="templates")
NO_STORE = {"Cache-Control": "no-store"}


class EndpointForm(FlaskForm):
    url = StringField("Endpoint URL (https://…)", validators=[DataRequired(), Length(max=2000)])
    description = StringField("Description", validators=[Optional(), Length(max=200)])
    events = SelectMultipleField(
        "Events", choices=[SelectChoice(k, f"{k}: {v}") for k, v in webhooks.EVENTS.items()],
        validate_choice=False,
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())


class ConfirmForm(FlaskForm):
    """A button that changes something: nothing to fill in but the CSRF token."""


def _endpoints() -> list[WebhookEndpoint]:
    return list(db.session.scalars(scoped(select(WebhookEndpoint), WebhookEndpoint)
                                   .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)))


def _apply_errors(form: EndpointForm, errors: dict[str, list[str]]) -> None:
    for name, messages in errors.items():
        getattr(form, name, form.url).errors = list(messages)


def _list_page(form: EndpointForm, status: int = 200, new_secret: str | None = None,
               created: WebhookEndpoint | None = None):
    endpoints = _endpoints()
    return render_template(
        "webhooks/endpoints.html", endpoints=endpoints, form=form, new_secret=new_secret,
        created=created, stats=deliveries.stats([e.id for e in endpoints]),
        events=webhooks.EVENTS), status, NO_STORE


@bp.route("/", methods=["GET", "POST"])
@roles_required(Role.CLIENT_ADMIN)
def endpoints():
    """List the client's endpoints and register a new one (its secret is shown once)."""
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            endpoint, secret = webhooks.create_endpoint(
                current_user.client, form.url.data, form.events.data or [],
                form.description.data or "", actor=current_user)
        except webhooks.WebhookError as exc:
            _apply_errors(form, exc.errors)
        else:
            return _list_page(EndpointForm(formdata=None), new_secret=secret, created=endpoint)
    return _list_page(form, 422 if request.method == "POST" else 200)


def _endpoint(public_id: str) -> WebhookEndpoint:
    return get_scoped_or_404(WebhookEndpoint, public_id)


def _detail(endpoint: WebhookEndpoint, form: EndpointForm | None = None, status: int = 200,
            new_secret: str | None = None):
    wanted = request.args.get("status", "")
    if wanted and wanted not in DELIVERY_STATUSES:
        abort(400)
    stmt = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if wanted:
        stmt = stmt.where(WebhookDelivery.status == wanted)
    pagination = db.paginate(
        stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()),
        page=max(request.args.get("page", 1, type=int), 1),
        per_page=current_app.config["PAGE_SIZE"], error_out=False)
    if form is None:
        form = EndpointForm(data={"url": endpoint.url, "description": endpoint.description,
                                  "events": endpoint.events})
    return render_template(
        "webhooks/endpoint.html", endpoint=endpoint, form=form, pagination=pagination,
        wanted=wanted, statuses=DELIVERY_STATUSES, confirm=ConfirmForm(),
        new_secret=new_secret), status, NO_STORE


@bp.route("/<public_id>", methods=["GET", "POST"])
@roles_required(Role.CLIENT_ADMIN)
def endpoint(public_id: str):
    """One endpoint: edit it, see its deliveries."""
    endpoint = _endpoint(public_id)
    if request.method == "GET":
        return _detail(endpoint)
    form = EndpointForm()
    if form.validate_on_submit():
        try:
            webhooks.update_endpoint(endpoint, form.url.data, form.events.data or [],
                                     form.description.data or "", actor=current_user)
        except webhooks.WebhookError as exc:
            _apply_errors(form, exc.errors)
        else:
            flash("Endpoint saved.", "info")
            return redirect(url_for(".endpoint", public_id=endpoint.public_id))
    return _detail(endpoint, form, 422)


@bp.route("/<public_id>/enable", methods=["POST"])
@roles_required(Role.CLIENT_ADMIN)
def enable(public_id: str):
    endpoint = _endpoint(public_id)
    if ConfirmForm().validate_on_submit():
        webhooks.set_enabled(endpoint, not endpoint.enabled, actor=current_user)
        flash("Endpoint enabled." if endpoint.enabled else "Endpoint disabled; nothing is "
              "sent to it until you enable it again.", "info")
    return redirect(url_for(".endpoint", public_id=endpoint.public_id))


@bp.route("/<public_id>/rotate", methods=["POST"])
@roles_required(Role.CLIENT_ADMIN)
def rotate(public_id: str):
    """A new signing secret, shown once; the old one stops working at once."""
    endpoint = _endpoint(public_id)
    if not ConfirmForm().validate_on_submit():
        return redirect(url_for(".endpoint", public_id=endpoint.public_id))
    secret = webhooks.rotate_secret(endpoint, actor=current_user)
    return _detail(endpoint, new_secret=secret)


@bp.route("/<public_id>/test", methods=["POST"])
@roles_required(Role.CLIENT_ADMIN)
def test(public_id: str):
    endpoint = _endpoint(public_id)
    if ConfirmForm().validate_on_submit():
        try:
            deliveries.send_test(endpoint, actor=current_user)
        except webhooks.WebhookError as exc:
            flash(" ".join(m for v in exc.errors.values() for m in v), "error")
        else:
            flash("A webhook.test delivery is on its way; see it in the log below.", "info")
    return redirect(url_for(".endpoint", public_id=endpoint.public_id))


def _delivery(public_id: str) -> WebhookDelivery:
    return get_scoped_or_404(WebhookDelivery, public_id, options=[
        joinedload(WebhookDelivery.endpoint), selectinload(WebhookDelivery.attempt_log)])


@bp.route("/deliveries/<public_id>")
@roles_required(Role.CLIENT_ADMIN)
def delivery(public_id: str):
    item = _delivery(public_id)
    return render_template(
        "webhooks/delivery.html", delivery=item, confirm=ConfirmForm(),
        body=json.dumps(json.loads(deliveries.body_for(item)), indent=2, sort_keys=True),
    ), 200, NO_STORE


@bp.route("/deliveries/<public_id>/redeliver", methods=["POST"])
@roles_required(Role.CLIENT_ADMIN)
def redeliver(public_id: str):
    item = _delivery(public_id)
    if ConfirmForm().validate_on_submit():
        try:
            deliveries.redeliver(item, actor=current_user)
        except webhooks.WebhookError as exc:
            flash(" ".join(m for v in exc.errors.values() for m in v), "error")
        else:
            flash("Redelivery queued; refresh to see the new attempt.", "info")
    return redirect(url_for(".delivery", public_id=item.public_id))
