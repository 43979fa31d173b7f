"""Provider-side intake routes: staff download a task's documents.

Clients use the portal's own route; both serve through ``documents.send`` and
scope the lookup, so staff restricted to some clients get 404 for the others.
"""

from __future__ import annotations

from flask import Blueprint
from flask_login import current_user

from ..access import get_scoped_or_404, provider_only
from ..models import Document
from . import documents

bp = Blueprint("intake", __name__)


@bp.route("/documents/<public_id>")
@provider_only
def download_document(public_id: str):
    return documents.send(get_scoped_or_404(Document, public_id), actor=current_user)
