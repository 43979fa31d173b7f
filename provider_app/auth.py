"""Sign-in and sign-out, session hardening (fresh session id, idle timeout)."""

from __future__ import annotations

from datetime import UTC, datetime

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
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from .access import login_required, public
from .accounts import authenticate
from .audit import record
from .extensions import db, limiter, login_manager
from .models import User

bp = Blueprint("auth", __name__)


class LoginForm(FlaskForm):
    # No format check: a malformed address simply fails to sign in.
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=200)])


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


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("provider.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user, problem = authenticate(form.email.data, form.password.data)
        if user is None:
            db.session.commit()  # keep the failure count and audit event
            form.password.errors.append(problem)
            return render_template("auth/login.html", form=form), 401
        session.clear()  # new session at sign-in: no fixation
        login_user(user)
        session["epoch"] = user.session_epoch
        session["last_seen"] = datetime.now(UTC).timestamp()
        session.permanent = True
        return redirect(_safe_next(request.args.get("next")) or url_for("provider.home"))
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    record("auth.logout", object_type="user", object_id=current_user.id)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


def enforce_idle_timeout():
    """Sign out a session idle for longer than SESSION_IDLE_MINUTES."""
    if not current_user.is_authenticated or request.path.startswith("/api/"):
        return None
    now = datetime.now(UTC).timestamp()
    last_seen = session.get("last_seen", now)
    if now - last_seen > current_app.config["SESSION_IDLE_MINUTES"] * 60:
        logout_user()
        session.clear()
        flash("Your session timed out; please sign in again.", "info")
        return redirect(url_for("auth.login", next=request.full_path))
    session["last_seen"] = now
    return None
