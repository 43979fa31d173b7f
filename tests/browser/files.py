"""Files a journey hands to the app as a person would: a small PDF, a CSV of many tasks."""

from __future__ import annotations

import csv
import io


def small_pdf(text: str) -> bytes:
    """A one-page PDF 1.4 showing ``text``: real enough for the app's type sniffing and for
    a PDF reader, small enough to write by hand (no PDF library needed)."""
    safe = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    stream = f"BT /F1 14 Tf 72 720 Td ({safe}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, xref)
    return bytes(out)


def data_entry_csv(rows: int, ref_prefix: str) -> bytes:
    """``rows`` data-entry tasks (the demo DATA type needs only a description), each with
    its own reference, so a second run's file is never refused as a repeat upload."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["task_type", "priority", "external_ref", "description"])
    for n in range(1, rows + 1):
        writer.writerow(["DATA", "normal", f"{ref_prefix}-{n:03d}",
                         f"Key the renewal questionnaire, page {n}"])
    return buffer.getvalue().encode()
