from research.rag import extract
from tests.rag import documents


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
  assert extract.extract(tmp_path / "d.md") == (extract.Document("hello"), None)
  assert extract.extract(tmp_path / "missing.txt")[0] is None


PAGES = [["Adam keeps two moving averages.", "Its betas are (0.9, 0.999)."],
         ["AdamW decouples weight decay."],
         ["Lion uses the sign of the update."]]


def test_a_pdf_gives_the_text_of_each_page_and_where_each_starts(tmp_path):
  document, why = extract.extract(documents.write_pdf(tmp_path / "adam.pdf", PAGES))
  assert why is None
  assert document.text == "\n\n".join("\n".join(lines) for lines in PAGES)
  starts = [document.text.index(lines[0]) for lines in PAGES]
  assert document.page_starts == tuple(starts)
  end_of_1 = starts[0] + len("\n".join(PAGES[0]))
  assert document.pages(0, end_of_1) == (1, 1)
  assert document.pages(starts[1], starts[1] + 5) == (2, 2)
  assert document.pages(starts[0] + 3, starts[2] + 4) == (1, 3)
  assert document.pages(starts[2], len(document.text)) == (3, 3)


def test_an_image_only_page_is_passed_over_and_a_scan_is_refused_in_one_sentence(tmp_path):
  document, _ = extract.extract(documents.write_pdf(tmp_path / "a.pdf", [PAGES[0], None,
                                                                          PAGES[1]]))
  assert document.text == "\n".join(PAGES[0]) + "\n\n" + PAGES[1][0]
  assert document.pages(len(document.text) - 3, len(document.text)) == (3, 3)
  assert extract.extract(documents.write_pdf(tmp_path / "scan.pdf", [None, None])) == (
      None, "no text layer (a scanned PDF?); run OCR on it first")


def test_broken_and_encrypted_pdfs_give_one_sentence(tmp_path):
  import pypdf  # pylint: disable=g-import-not-at-top
  good = documents.pdf_bytes(PAGES)
  (tmp_path / "cut.pdf").write_bytes(good[:len(good) // 2])
  document, why = extract.extract(tmp_path / "cut.pdf")
  assert document is None and why.startswith("not a readable PDF (") and "\n" not in why
  writer = pypdf.PdfWriter(clone_from=documents.write_pdf(tmp_path / "open.pdf", PAGES))
  writer.encrypt("secret", algorithm="RC4-128")
  writer.write(tmp_path / "locked.pdf")
  assert extract.extract(tmp_path / "locked.pdf") == (
      None, "encrypted PDF that needs a password; save a copy without one and ingest that")
  writer = pypdf.PdfWriter(clone_from=tmp_path / "open.pdf")
  writer.encrypt("", "owner only", algorithm="RC4-128")  # opens without a password
  writer.write(tmp_path / "restricted.pdf")
  assert extract.extract(tmp_path / "restricted.pdf")[0].text == extract.extract(
      tmp_path / "open.pdf")[0].text


def test_a_docx_gives_headings_paragraphs_and_tables_in_order(tmp_path):
  path = documents.write_docx(tmp_path / "notes.docx", [
      ("heading", "Optimizers"), ("paragraph", "Adam keeps two moving averages."),
      ("table", [["name", "beta1"], ["Adam", "0.9"]]), ("paragraph", ""),
      ("paragraph", "SGD has no state.")])
  document, why = extract.extract(path)
  assert why is None and document.page_starts == ()
  assert document.text == ("Optimizers\n\nAdam keeps two moving averages.\n\n"
                           "name | beta1\nAdam | 0.9\n\nSGD has no state.")
  (tmp_path / "fake.docx").write_bytes(b"PK\x03\x04 not really a zip")
  assert extract.extract(tmp_path / "fake.docx") == (
      None, "not a readable Word document: expected a .docx package, a zip with "
      "word/document.xml (PackageNotFoundError)")


def test_utf16_with_its_byte_order_mark_is_text(tmp_path):
  (tmp_path / "w.txt").write_bytes("Windows notes, café".encode("utf-16"))
  assert extract.extract(tmp_path / "w.txt")[0].text == "Windows notes, café"
