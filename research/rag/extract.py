"""Text out of documents: .txt and .md as they are, .html through the standard library's
parser (scripts and styles dropped, block elements become paragraph breaks), .pdf through
pypdf when it is installed. Anything else, or anything unreadable, is None plus a reason."""

import html.parser
import importlib.util
import re
from pathlib import Path

MAX_BYTES = 64 << 20  # a document larger than this is skipped: it would be read whole
TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)

_BLOCKS = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
           "footer", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "title", "hr"}
_SKIP = {"script", "style", "noscript", "template", "svg"}


def suffixes() -> tuple[str, ...]:
  pdf = PDF_SUFFIXES if importlib.util.find_spec("pypdf") is not None else ()
  return TEXT_SUFFIXES + HTML_SUFFIXES + pdf


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


def _pdf_text(path: Path) -> str:
  import pypdf  # pylint: disable=g-import-not-at-top
  reader = pypdf.PdfReader(str(path))
  return "\n\n".join((page.extract_text() or "") for page in reader.pages)


def too_big(path) -> str | None:
  """Why a file is too large to read as one document, or None."""
  size = Path(path).stat().st_size
  if size > MAX_BYTES:
    return f"{size / 2**20:.0f} MiB, more than the {MAX_BYTES >> 20} MiB a document may have"
  return None


def extract(path) -> tuple[str | None, str | None]:
  """(text, None) for a readable document; (None, reason) otherwise."""
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
      text = _pdf_text(path)
    else:
      text = _decode(path.read_bytes(), path)
      if suffix in HTML_SUFFIXES:
        text = html_to_text(text)
  except (OSError, ValueError) as e:
    return None, str(e)
  except Exception as e:  # pylint: disable=broad-except  (pypdf raises many kinds)
    return None, f"{type(e).__name__}: {e}"
  if not text.strip():
    return None, "no text"
  return text, None
