"""PDF and DOCX files the tests write themselves: a PDF's bytes by hand (one Helvetica text
line per string, so its text layer is known exactly), a DOCX through python-docx.

  write_pdf(path, [["page one, line one", "line two"], ["page two"]])
  write_pdf(path, [None])                      # a page with an image and no text: a scan
  write_docx(path, [("heading", "Adam"), ("paragraph", "..."), ("table", [["a", "b"]])])
"""

from pathlib import Path

# A 2x2 grey image drawn over the page: what a scanner leaves, pixels and no text.
_SCAN = b"q 200 0 0 200 100 300 cm BI /W 2 /H 2 /CS /G /BPC 8 ID \x20\x60\xa0\xe0 EI Q"


def _escape(line: str) -> bytes:
  return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def _content(lines: list[str] | None) -> bytes:
  if lines is None:
    return _SCAN
  shown = b" T* ".join(b"(" + _escape(line) + b") Tj" for line in lines)
  return b"BT /F1 12 Tf 16 TL 72 720 Td " + shown + b" ET"


def pdf_bytes(pages: list[list[str] | None]) -> bytes:
  """A PDF 1.4 file with a correct cross-reference table: catalog, page tree, one font, and
  per page its page object and content stream."""
  n = len(pages)
  kids = b" ".join(f"{4 + 2 * i} 0 R".encode() for i in range(n))
  objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
             b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(n).encode() + b" >>",
             b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
  for i, lines in enumerate(pages):
    stream = _content(lines)
    objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
                   b"<< /Font << /F1 3 0 R >> >> /Contents " + f"{5 + 2 * i} 0 R".encode() +
                   b" >>")
    objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream +
                   b"\nendstream")
  out, offsets = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), []
  for number, body in enumerate(objects, 1):
    offsets.append(len(out))
    out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
  xref = len(out)
  out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
  out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
  out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
          .encode())
  return bytes(out)


def write_pdf(path, pages: list[list[str] | None]) -> Path:
  Path(path).write_bytes(pdf_bytes(pages))
  return Path(path)


def write_docx(path, blocks: list[tuple[str, object]]) -> Path:
  """("heading", text), ("paragraph", text) or ("table", rows of cell texts), in order."""
  import docx  # pylint: disable=g-import-not-at-top
  document = docx.Document()
  for kind, value in blocks:
    if kind == "heading":
      document.add_heading(value, level=1)
    elif kind == "paragraph":
      document.add_paragraph(value)
    else:
      table = document.add_table(rows=len(value), cols=len(value[0]))
      for r, row in enumerate(value):
        for c, cell in enumerate(row):
          table.cell(r, c).text = cell
  document.save(str(path))
  return Path(path)
