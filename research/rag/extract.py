"""Text out of documents: .txt and .md as they are, .html through the standard library's
parser (scripts and styles dropped, block elements become paragraph breaks), .pdf's text
layer through pypdf (each page's text, pages a paragraph apart, and where each page starts),
.docx through python-docx (paragraphs, headings and table rows in document order). Anything
else, or anything unreadable, is None plus a reason.

  document, why = extract.extract("paper.pdf")
  document.text, document.pages(start, end)           # (first, last) page of text[start:end]
"""

import bisect
import dataclasses
import html.parser
import re
from pathlib import Path

MAX_BYTES = 64 << 20  # a document larger than this is skipped: it would be read whole
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
DOCX_SUFFIXES = (".docx",)
TABLE_CELL = " | "  # between the cells of a table row; rows are lines, a table one paragraph

_BLOCKS = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
           "footer", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "title", "hr"}
_SKIP = {"script", "style", "noscript", "template", "svg"}


def suffixes() -> tuple[str, ...]:
  return TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES + DOCX_SUFFIXES


@dataclasses.dataclass(frozen=True)
class Document:
  text: str
  page_starts: tuple[int, ...] = ()  # a PDF's: where page 1, 2, ... begins in text

  def pages(self, start: int, end: int) -> tuple[int, int] | None:
    """The first and last page (from 1) of text[start:end]; None without pages. An empty
    page starts where the next one does, so bisect_right passes over it."""
    if not self.page_starts:
      return None
    return (bisect.bisect_right(self.page_starts, start),
            bisect.bisect_right(self.page_starts, max(start, end - 1)))


class _HtmlText(html.parser.HTMLParser):

  def __init__(self):
    super().__init__(convert_charrefs=True)
    self.parts, self.skipping = [], 0

  def handle_starttag(self, tag, attrs):
    if tag in _SKIP:
      self.skipping += 1
    elif tag in _BLOCKS:
      self.parts.append("\n\n")

  def handle_endtag(self, tag):
    if tag in _SKIP:
      self.skipping = max(0, self.skipping - 1)
    elif tag in _BLOCKS:
      self.parts.append("\n\n")

  def handle_data(self, data):
    if not self.skipping:
      self.parts.append(data)


def html_to_text(markup: str) -> str:
  parser = _HtmlText()
  parser.feed(markup)
  parser.close()
  text = "".join(parser.parts)
  text = re.sub(r"[ \t\r\f\v]+", " ", text)
  text = re.sub(r" ?\n ?", "\n", text)
  return re.sub(r"\n{3,}", "\n\n", text).strip()


def _utf16_without_bom(head: bytes) -> bool:
  """ASCII-range text saved as UTF-16 has a NUL in every other byte, and only there."""
  even, odd = head[0::2], head[1::2]
  return len(head) >= 4 and any(
      half.count(0) == len(half) and 0 not in other for half, other in ((odd, even), (even, odd)))


def _decode(data: bytes, path) -> str:
  if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
    return data.decode("utf-16")  # its byte-order mark says which
  if b"\x00" in data[:8192]:
    if _utf16_without_bom(data[:8192 - 8192 % 2]):
      raise ValueError("UTF-16 text without a byte-order mark; save it as UTF-8")
    raise ValueError("binary content (NUL bytes)")
  try:
    return data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ValueError(f"not UTF-8 text (byte {e.start})") from None


def _pdf(path: Path) -> Document:
  """Its pages' text a paragraph apart; ValueError for a PDF that is encrypted, has no text
  layer, or that pypdf cannot parse."""
  import pypdf  # pylint: disable=g-import-not-at-top
  from pypdf import errors  # pylint: disable=g-import-not-at-top
  try:
    reader = pypdf.PdfReader(str(path))  # tries the empty password of an encrypted one
    pages = [(page.extract_text() or "").strip() for page in reader.pages]
  except errors.FileNotDecryptedError:
    raise ValueError("encrypted PDF that needs a password; save a copy without one and "
                     "ingest that") from None
  except errors.DependencyError:  # AES needs the cryptography package, which we do not pin
    raise ValueError("encrypted PDF (AES); save a copy without encryption and ingest "
                     "that") from None
  except (errors.PyPdfError, KeyError, TypeError, AttributeError, IndexError) as e:
    raise ValueError(f"not a readable PDF ({type(e).__name__}: {' '.join(str(e).split())})"
                     ) from None
  if not any(pages):
    raise ValueError("no text layer (a scanned PDF?); run OCR on it first")
  starts, at = [], 0
  for text in pages:
    starts.append(at)
    at += len(text) + 2 if text else 0
  return Document("\n\n".join(text for text in pages if text), tuple(starts))


def _docx_blocks(container):
  """The text of each paragraph and table of a document or table cell, in order."""
  from docx import table as docx_table  # pylint: disable=g-import-not-at-top
  for item in container.iter_inner_content():
    if isinstance(item, docx_table.Table):
      rows = []
      for row in item.rows:
        cells, seen = [], []
        for cell in row.cells:
          if not any(cell._tc is s for s in seen):  # a merged cell: once per column spanned
            seen.append(cell._tc)
            cells.append(" ".join(_docx_blocks(cell)))
        if any(c.strip() for c in cells):
          rows.append(TABLE_CELL.join(c.strip() for c in cells))
      yield "\n".join(rows)
    else:
      yield item.text


def _docx(path: Path) -> Document:
  import docx  # pylint: disable=g-import-not-at-top
  try:
    document = docx.Document(str(path))
  except Exception as e:  # pylint: disable=broad-except  (zip, XML and package errors)
    raise ValueError("not a readable Word document: expected a .docx package, a zip with "
                     f"word/document.xml ({type(e).__name__})") from None
  blocks = (b.strip() for b in _docx_blocks(document))
  return Document("\n\n".join(b for b in blocks if b))


def too_big(path) -> str | None:
  """Why a file is too large to read as one document, or None."""
  size = Path(path).stat().st_size
  if size > MAX_BYTES:
    return f"{size / 2**20:.0f} MiB, more than the {MAX_BYTES >> 20} MiB a document may have"
  return None


def extract(path) -> tuple[Document | None, str | None]:
  """(document, None) for a readable document; (None, reason) otherwise."""
  path = Path(path)
  suffix = path.suffix.lower()
  if suffix not in suffixes():
    return None, f"unsupported file type {suffix or '(none)'}"
  try:
    if why := too_big(path):
      return None, why
    if not path.stat().st_size:
      return None, "empty file"
    if suffix in PDF_SUFFIXES:
      document = _pdf(path)
    elif suffix in DOCX_SUFFIXES:
      document = _docx(path)
    else:
      text = _decode(path.read_bytes(), path)
      document = Document(html_to_text(text) if suffix in HTML_SUFFIXES else text)
  except (OSError, ValueError) as e:
    return None, str(e)
  except Exception as e:  # pylint: disable=broad-except  (a parser's own error on odd input)
    return None, f"{type(e).__name__}: {e}"
  if not document.text.strip():
    return None, "no text"
  return document, None
