"""Sign-in (password, then TOTP), sign-out, MFA set-up, password change and reset.

Signing in is two steps for anyone with MFA, and provider staff must have it:
the password step only parks the person in ``session["pending"]`` (under a new
session id); Flask-Login's user is set once the second factor passed (or, for
someone without MFA, right away). Until then ``current_user`` is anonymous, so
no page or API route can be reached half-way.
"""

from __future__ import annotations

import os
import time

import click
from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from . import mfa, sessions
from .access import login_required, public
from .accounts import (
    LOCKED_MESSAGE,
    PasswordError,
    authenticate,
    change_password,
    is_locked,
    record_login,
    register_failure,
    request_password_reset,
    reset_password,
    reset_token_user,
)
from .audit import record
from .extensions import db, limiter, login_manager
from .models import MfaRecoveryCode, User
from .passwords import verify_password

bp = Blueprint("auth", __name__, cli_group=None)

PENDING_SECONDS = 600  # time allowed between the password step and the code step


class LoginForm(FlaskForm):
    # No format check: a malformed address simply fails to sign in.
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


class CodeForm(FlaskForm):
    code = StringField(
        "Authentication code", validators=[DataRequired(), Length(min=6, max=20)]
    )


class ConfirmPasswordForm(FlaskForm):
    password = PasswordField("Your password", validators=[DataRequired(), Length(max=200)])


class PasswordChangeForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=200)]
    )
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=200)])
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new_password", message="The two do not match.")],
    )


class ForgotPasswordForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])


class ResetPasswordForm(FlaskForm):
    new_password = PasswordField("New password", validators=[DataRequired(), Length(max=200)])
    confirm = PasswordField(
        "New password again",
        validators=[DataRequired(), EqualTo("new_password", message="The two do not match.")],
    )


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    user = db.session.get(User, int(user_id))
    if user is None or session.get("epoch") != user.session_epoch:
        return None
    return user


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths, never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return None


def _form_status(form: FlaskForm) -> int:
    return 422 if form.errors else 200


def _audit_rate_limit(limit) -> None:
    """A refused burst of sign-in attempts is an authentication decision too; committed
    here because the 429 response rolls the request back."""
    record("auth.rate_limited", object_type="route",
           reason=f"{request.method} {request.path}: over {limit.limit}")
    db.session.commit()


# --- step one: the password --------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"],
               on_breach=_audit_rate_limit)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("provider.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user, problem = authenticate(form.email.data, form.password.data)
        if user is None:
            db.session.commit()  # keep the failure count, audit event and lock-out notice
            form.password.errors.append(problem)
            return render_template("auth/login.html", form=form), 401
        next_path = _safe_next(request.args.get("next"))
        if not (mfa.is_enabled(user) or mfa.is_required(user)):
            return _finish(user, mfa_checked=False, next_path=next_path)
        session.clear()
        session["pending"] = {
            "user_id": user.id,
            "epoch": user.session_epoch,
            "at": time.time(),
            "next": next_path,
            "stage": "verify" if mfa.is_enabled(user) else "enrol",
        }
        sessions.rotate()
        return redirect(url_for("auth.verify" if mfa.is_enabled(user) else "auth.enrol"))
    return render_template("auth/login.html", form=form), _form_status(form)


def _pending(stage: str) -> User | None:
    """The person who passed the password step and now owes ``stage``, or None."""
    pending = session.get("pending") or {}
    if pending.get("stage") != stage or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        return None
    user = db.session.get(User, pending.get("user_id"))
    if user is None or not user.active or user.session_epoch != pending.get("epoch"):
        return None
    return user


def _restart(message: str):
    session.pop("pending", None)
    session.pop("enrol_secret", None)
    flash(message, "info")
    return redirect(url_for("auth.login"))


def _finish(user: User, *, mfa_checked: bool, next_path: str | None,
            recovery_codes: list[str] | None = None):
    """Both steps passed: a signed-in session under a fresh id."""
    record_login(user, mfa=mfa_checked)
    sessions.begin(user, mfa=mfa_checked)
    if recovery_codes:
        session["recovery_codes"] = recovery_codes
        session["after_codes"] = next_path
        return redirect(url_for("auth.recovery_codes"))
    return redirect(next_path or url_for("provider.home"))


# --- step two: the code ------------------------------------------------------


@bp.route("/login/verify", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["MFA_RATE_LIMIT"], methods=["POST"],
               on_breach=_audit_rate_limit)
def verify():
    user = _pending("verify")
    if user is None:
        return _restart("Please sign in with your password first.")
    form = CodeForm()
    if form.validate_on_submit():
        if is_locked(user):
            record("auth.login_locked", object_type="user", object_id=user.id,
                   client_id=user.client_id)
            db.session.commit()
            return _restart(LOCKED_MESSAGE)
        try:
            method = mfa.verify(user, form.code.data)
        except mfa.MfaError as exc:
            form.code.errors.append(str(exc))  # a server-side key problem, not the code
            return render_template("auth/verify.html", form=form), 503
        if method is None:
            locked = register_failure(user, "wrong MFA code")
            db.session.commit()  # keep the failure count, audit event and lock-out notice
            if locked:
                return _restart(LOCKED_MESSAGE)
            form.code.errors.append(
                "That code is not right or was already used; wait for the next one."
            )
            return render_template("auth/verify.html", form=form), 401
        next_path = (session.get("pending") or {}).get("next")
        if method == "recovery":
            flash("You signed in with a recovery code; it cannot be used again.", "info")
        return _finish(user, mfa_checked=True, next_path=next_path)
    return render_template("auth/verify.html", form=form), _form_status(form)


def _enrolment_secret() -> str:
    """The secret being set up, kept in the (server-side) session until confirmed."""
    secret = session.get("enrol_secret")
    if not secret:
        secret = session["enrol_secret"] = mfa.new_secret()
    return secret


def _render_enrol(user: User, form: CodeForm, status: int, *, action: str):
    secret = _enrolment_secret()
    uri = mfa.provisioning_uri(user, secret)
    return render_template(
        "auth/enrol.html", form=form, secret=secret, uri=uri, qr=mfa.qr_data_uri(uri),
        action=action, required=mfa.is_required(user),
    ), status


@bp.route("/login/enrol", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["MFA_RATE_LIMIT"], methods=["POST"],
               on_breach=_audit_rate_limit)
def enrol():
    """Provider staff without MFA set it up here before their first page."""
    user = _pending("enrol")
    if user is None:
        return _restart("Please sign in with your password first.")
    form = CodeForm()
    if form.validate_on_submit():
        try:
            codes = mfa.enable(user, _enrolment_secret(), form.code.data)
        except mfa.MfaError as exc:
            db.session.commit()  # keep the audit event
            form.code.errors.append(str(exc))
            return _render_enrol(user, form, 422, action=url_for("auth.enrol"))
        next_path = (session.get("pending") or {}).get("next")
        return _finish(user, mfa_checked=True, next_path=next_path, recovery_codes=codes)
    return _render_enrol(user, form, _form_status(form), action=url_for("auth.enrol"))


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    record("auth.logout", object_type="user", object_id=current_user.id,
           client_id=current_user.client_id)
    sessions.end("You are signed out.")
    return redirect(url_for("auth.login"))


# --- the signed-in person's own security settings ----------------------------


def _codes_left(user: User) -> int:
    return db.session.scalar(
        select(func.count()).select_from(MfaRecoveryCode).where(
            MfaRecoveryCode.user_id == user.id, MfaRecoveryCode.used_at.is_(None)
        )
    )


@bp.route("/account")
@login_required
def security():
    user = current_user._get_current_object()
    if not mfa.is_enabled(user):
        return _render_enrol(user, CodeForm(), 200, action=url_for("auth.enable_mfa"))
    return render_template(
        "auth/security.html", codes_left=_codes_left(user), required=mfa.is_required(user),
        confirm=ConfirmPasswordForm(),
    )


@bp.route("/account/mfa", methods=["POST"])
@login_required
def enable_mfa():
    user = current_user._get_current_object()
    if mfa.is_enabled(user):
        return redirect(url_for("auth.security"))
    form = CodeForm()
    if not form.validate_on_submit():
        return _render_enrol(user, form, 422, action=url_for("auth.enable_mfa"))
    try:
        codes = mfa.enable(user, _enrolment_secret(), form.code.data)
    except mfa.MfaError as exc:
        db.session.commit()  # keep the audit event
        form.code.errors.append(str(exc))
        return _render_enrol(user, form, 422, action=url_for("auth.enable_mfa"))
    session.pop("enrol_secret", None)
    session["mfa"] = True
    session["recovery_codes"] = codes
    sessions.rotate()
    return redirect(url_for("auth.recovery_codes"))


def _confirmed_password(user: User) -> ConfirmPasswordForm | None:
    """The password-confirmation form when it failed (errors filled in), else None."""
    form = ConfirmPasswordForm()
    if form.validate_on_submit() and verify_password(user.password_hash, form.password.data):
        return None
    if form.password.data:
        form.password.errors.append("That password is not right.")
    return form


@bp.route("/account/mfa/recovery-codes", methods=["POST"])
@login_required
def new_recovery_codes():
    user = current_user._get_current_object()
    if not mfa.is_enabled(user):
        return redirect(url_for("auth.security"))
    failed = _confirmed_password(user)
    if failed is not None:
        return render_template("auth/security.html", codes_left=_codes_left(user),
                               required=mfa.is_required(user), confirm=failed), 422
    session["recovery_codes"] = mfa.new_recovery_codes(user)
    record("auth.recovery_codes_replaced", object_type="user", object_id=user.id,
           client_id=user.client_id)
    return redirect(url_for("auth.recovery_codes"))


@bp.route("/account/mfa/disable", methods=["POST"])
@login_required
def disable_mfa():
    user = current_user._get_current_object()
    if mfa.is_required(user):
        flash("Provider staff must keep multi-factor sign-in on.", "error")
        return render_template("auth/security.html", codes_left=_codes_left(user),
                               required=True, confirm=ConfirmPasswordForm()), 403
    failed = _confirmed_password(user)
    if failed is not None:
        return render_template("auth/security.html", codes_left=_codes_left(user),
                               required=False, confirm=failed), 422
    mfa.disable(user, actor=user, reason="turned off by the user")
    session["mfa"] = False
    flash("Multi-factor sign-in is off.", "info")
    return redirect(url_for("auth.security"))


@bp.route("/account/recovery-codes")
@login_required
def recovery_codes():
    """Shown once, right after they are made; reloading shows nothing."""
    codes = session.pop("recovery_codes", None)
    if not codes:
        return redirect(url_for("auth.security"))
    next_path = _safe_next(session.pop("after_codes", None))
    return render_template("auth/recovery_codes.html", codes=codes,
                           next_path=next_path or url_for("provider.home"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    user = current_user._get_current_object()
    form = PasswordChangeForm()
    if form.validate_on_submit():
        try:
            change_password(user, form.current_password.data, form.new_password.data)
        except PasswordError as exc:
            db.session.commit()  # keep the audit event of a wrong current password
            field = form.current_password if "current" in str(exc) else form.new_password
            field.errors.append(str(exc))
            return render_template("auth/password.html", form=form), 422
        session["epoch"] = user.session_epoch  # this session stays; the others end
        sessions.rotate()
        flash("Your password is changed; your other sessions were signed out.", "info")
        return redirect(url_for("auth.security"))
    return render_template("auth/password.html", form=form), _form_status(form)


# --- forgotten passwords -----------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["PASSWORD_RESET_RATE_LIMIT"], methods=["POST"],
               on_breach=_audit_rate_limit)
def forgot_password():
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        request_password_reset(form.email.data)
        # The same answer whether or not the address has an account.
        flash("If that address has an account, a reset link is on its way. "
              "It works once, within the hour.", "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", form=form), _form_status(form)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["PASSWORD_RESET_RATE_LIMIT"], methods=["POST"],
               on_breach=_audit_rate_limit)
def reset_password_page(token: str):
    if reset_token_user(token) is None:
        if request.method == "POST":
            record("auth.password_reset_failed", object_type="user", reason="invalid token")
            db.session.commit()  # keep the audit event: the 404 rolls the request back
        return render_template("auth/reset_invalid.html"), 404
    form = ResetPasswordForm()
    if form.validate_on_submit():
        try:
            reset_password(token, form.new_password.data)
        except PasswordError as exc:
            db.session.rollback()  # nothing of a refused reset is kept
            form.new_password.errors.append(str(exc))
            return render_template("auth/reset.html", form=form), 422
        sessions.end("Your password is reset; sign in with the new one.")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form), _form_status(form)


# --- command line ------------------------------------------------------------


def _user_by_email(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise click.ClickException(f"No user with e-mail {email}.")
    return user


@bp.cli.command("totp-code")
@click.option("--email", required=True, help="The user whose current code to print.")
def totp_code_command(email: str) -> None:
    """Print a user's current authentication code (development and demo only)."""
    if os.environ.get("THROUGHLINE_ENV") == "production" or (
        current_app.config.get("ENV_NAME") == "production"
    ):
        raise click.ClickException("totp-code is for development; it refuses to run in production.")
    try:
        click.echo(mfa.current_code(_user_by_email(email)))
    except mfa.MfaError as exc:
        raise click.ClickException(str(exc)) from exc


@bp.cli.command("reset-mfa")
@click.option("--email", required=True, help="The user who lost their authenticator.")
def reset_mfa_command(email: str) -> None:
    """Turn off a user's MFA (lost phone); provider staff set it up again at next sign-in."""
    user = _user_by_email(email)
    mfa.disable(user, reason="reset from the command line")
    user.session_epoch += 1  # sessions signed in with the old factor end
    db.session.commit()
    click.echo(f"Multi-factor sign-in reset for {user.email}; they enrol again at next sign-in.")
