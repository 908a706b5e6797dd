import importlib.util

from research.rag import extract


def test_html_keeps_text_and_blocks_and_drops_scripts():
  text = extract.html_to_text("<title>T</title><style>x{}</style><p>One &lt;two&gt;</p>"
                              "<script>alert(1)</script><ul><li>a</li><li>b</li></ul>")
  assert text == "T\n\nOne <two>\n\na\n\nb"


def test_unsupported_binary_and_empty_files_give_a_reason(tmp_path):
  (tmp_path / "a.bin").write_bytes(b"\x00")
  (tmp_path / "b.txt").write_bytes(b"ab\x00cd")
  (tmp_path / "c.md").write_text("  \n")
  (tmp_path / "d.md").write_text("\ufeffhello")
  assert extract.extract(tmp_path / "a.bin") == (None, "unsupported file type .bin")
  assert extract.extract(tmp_path / "b.txt")[1] == "binary content (NUL bytes)"
  assert extract.extract(tmp_path / "c.md") == (None, "no text")
  assert extract.extract(tmp_path / "d.md") == ("hello", None)
  assert extract.extract(tmp_path / "missing.txt")[0] is None


def test_pdf_only_when_pypdf_is_installed(tmp_path):
  (tmp_path / "x.pdf").write_bytes(b"%PDF-1.4 broken")
  text, why = extract.extract(tmp_path / "x.pdf")
  assert text is None
  if importlib.util.find_spec("pypdf") is None:
    assert why == "unsupported file type .pdf" and ".pdf" not in extract.suffixes()


def test_utf16_with_its_byte_order_mark_is_text(tmp_path):
  (tmp_path / "w.txt").write_bytes("Windows notes, café".encode("utf-16"))
  assert extract.extract(tmp_path / "w.txt") == ("Windows notes, café", None)
