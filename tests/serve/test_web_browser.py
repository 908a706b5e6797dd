"""The pages in headless Chromium (Debian's, driven by Playwright) against the real app on a
loopback port: chat streams, a knowledge base answers with its citation highlighted, and a
tiny fine-tune draws its loss curve and exports.

Without Chromium these tests skip, or fail when BOOKFORAI_REQUIRE_BROWSER=1 (as in CI).
"""

import os
import re
import time

import pytest

from research.serve import launch
from tests.rag import documents
from tests.serve import web_fixtures


def _browser_missing() -> str | None:
  if not os.path.exists(web_fixtures.CHROMIUM):
    return web_fixtures.NO_BROWSER
  try:
    import playwright.sync_api  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return "the browser tests need playwright: pip install -e '.[dev]'."
  return None


def wait_until(page, expression: str, timeout: float = 30_000) -> None:
  """page.wait_for_function, which builds its predicate with eval: the pages' CSP (no
  'unsafe-eval') refuses that, so poll with page.evaluate, which the CSP does not cover."""
  deadline = time.monotonic() + timeout / 1000
  while not page.evaluate(expression):
    assert time.monotonic() < deadline, f"timed out waiting for {expression}"
    page.wait_for_timeout(100)


@pytest.fixture(scope="module")
def browser():
  missing = _browser_missing()
  if missing:
    if os.environ.get("BOOKFORAI_REQUIRE_BROWSER") == "1":
      pytest.fail(missing, pytrace=False)
    pytest.skip(missing)
  from playwright.sync_api import sync_playwright  # pylint: disable=g-import-not-at-top
  with sync_playwright() as p:
    chromium = p.chromium.launch(executable_path=web_fixtures.CHROMIUM, headless=True)
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
  del browser  # no server to start when there is no browser to drive it
  root = tmp_path_factory.mktemp("web")
  settings = web_fixtures.settings_for(web_fixtures.write_citing_model(root / "model"),
                                       web_fixtures.write_tiny_data(root / "data"),
                                       root / "work")
  with launch.ServerThread(web_fixtures.make_app(settings)) as running:
    running.work_dir = settings.work_dir  # where the page's relative paths lead
    yield running


@pytest.fixture
def page(browser, server):
  context = browser.new_context()
  page = context.new_page()
  page.set_default_timeout(30_000)
  errors = []
  page.on("pageerror", lambda e: errors.append(str(e)))
  page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text
          else None)  # what the pages' CSP refused: an inline script or style, a CDN
  page.goto(server.url + "/")
  page.wait_for_selector("body[data-ready='1']")
  yield page
  context.close()
  assert not errors, errors


def test_each_page_loads(page):
  assert page.is_visible("#page-chat") and page.is_visible("#s-temperature")
  page.click("nav a[data-page='kb']")
  page.wait_for_selector("#page-kb", state="visible")
  assert page.is_hidden("#page-chat")
  page.click("nav a[data-page='finetune']")
  page.wait_for_selector("#page-finetune", state="visible")
  assert page.input_value("#ft-dataset") == "tiny"  # the preference set is not offered
  assert page.locator("#ft-dataset option").count() == 1
  assert page.input_value("[name=lr_scheduler_type]") == "cosine"
  assert page.is_visible("#error") is False


def test_chat_streams_an_answer_and_keeps_the_history(page):
  page.fill("#s-temperature", "0")
  page.fill("#s-num_predict", "6")
  for turn in (1, 2):
    page.fill("#chat-input", f"w10 w11 turn {turn}")
    page.press("#chat-input", "Enter")
    wait_until(page, "document.querySelectorAll('.msg.assistant').length == "
                     f"{turn} && !document.querySelector('.msg.streaming')")
  answers = page.locator(".msg.assistant .text").all_inner_texts()
  assert all(a.startswith("[1]") for a in answers), answers  # greedy: token 0 each time
  assert page.locator(".msg.user").count() == 2
  page.reload()
  page.wait_for_selector("body[data-ready='1']")
  assert page.locator(".msg .text").all_inner_texts() == [
      "w10 w11 turn 1", answers[0], "w10 w11 turn 2", answers[1]]
  page.click("#chat-clear")
  page.reload()
  page.wait_for_selector("body[data-ready='1']")
  assert page.locator(".msg").count() == 0


def test_upload_ingest_and_a_cited_answer(page, tmp_path):
  page.click("nav a[data-page='kb']")
  page.fill("#kb-new-name", "notes")
  page.click("#kb-create button")
  wait_until(page, "document.getElementById('kb-select').value == 'notes'")
  assert ".pdf" in page.get_attribute("#kb-files", "accept").split(",")
  doc = documents.write_pdf(tmp_path / "adam.pdf",
                            [[line] for line in web_fixtures.DOCUMENT.split("\n\n")])
  page.set_input_files("#kb-files", str(doc))
  page.click("#kb-upload button")
  page.wait_for_selector("#kb-documents tbody tr")
  assert page.inner_text("#kb-documents tbody td") == "adam.pdf"
  page.click("#kb-ingest")
  wait_until(page, "document.getElementById('kb-status').textContent.startsWith('done')")
  assert page.locator("#kb-chunks li").count() >= 1
  assert "0.999" in page.inner_text("#kb-chunks")
  page.fill("#kb-question", web_fixtures.QUESTION)
  page.click("#kb-ask button")
  page.wait_for_selector("#kb-sources li")
  cite = page.locator("#kb-answer mark.cite").first
  assert cite.inner_text() == "[1]"
  cited = page.locator("#kb-sources li.cited")
  assert cited.count() == 1 and cited.get_attribute("id") == "source-1"
  assert page.inner_text("#source-1 .meta").startswith("[1] adam.pdf pp. 1-3 chunk 0, score")
  cite.hover()
  assert "focus" in page.get_attribute("#source-1", "class")
  # delete, after the page's confirm: the document and its chunks leave the lists
  page.once("dialog", lambda dialog: dialog.accept())
  page.click("#kb-documents tbody button[title='delete adam.pdf and its chunks']")
  wait_until(page, "document.querySelectorAll('#kb-documents tbody tr').length == 0")
  wait_until(page, "document.getElementById('kb-status').textContent.includes('1 removed')")
  assert page.locator("#kb-chunks li").count() == 0


def test_a_bad_form_value_names_the_field(page):
  page.click("nav a[data-page='finetune']")
  page.fill("[name=lora_rank]", "0")
  page.click("#ft-start")
  page.wait_for_selector("#error:not([hidden])")
  assert "lora_rank" in page.inner_text("#error")


def test_the_dpo_stage_offers_preference_sets_and_its_beta(page):
  page.click("nav a[data-page='finetune']")
  options = lambda: page.eval_on_selector_all("#ft-dataset option", "os => os.map(o => o.value)")
  assert options() == ["tiny"] and page.is_hidden("#ft-beta")
  page.select_option("#ft-stage", "dpo")
  assert options() == ["tiny_prefs"] and page.is_visible("#ft-beta")
  page.fill("[name=pref_beta]", "-1")
  page.click("#ft-start")
  page.wait_for_selector("#error:not([hidden])")
  assert "pref_beta" in page.inner_text("#error")
  page.select_option("#ft-stage", "sft")
  assert options() == ["tiny"] and page.is_hidden("#ft-beta")


def test_a_tiny_fine_tune_draws_its_loss_and_exports(page, server):
  page.click("nav a[data-page='finetune']")
  for name, value in web_fixtures.TINY_JOB.items():
    if name != "dataset":
      page.fill(f"[name={name}]", str(value))
  page.click("#ft-start")
  page.wait_for_selector("#ft-curve .loss-point", timeout=90_000)
  wait_until(page, "document.getElementById('ft-state').textContent == 'finished'",
             timeout=90_000)
  assert page.locator("#ft-curve .loss-point").count() == web_fixtures.TINY_JOB["max_steps"]
  assert re.match(r"step 3/3, loss \d", page.inner_text("#ft-steps"))
  assert page.is_disabled("#ft-resume")  # a finished job has nothing to resume
  page.click("#ft-export")
  wait_until(page,
      "document.getElementById('ft-export-path').textContent.includes('adapter')",
      timeout=90_000)
  exported = server.work_dir / page.inner_text("#ft-export-path").split()[0]
  assert (exported / "model.safetensors").is_file()


def test_the_page_asks_for_the_api_key_and_keeps_it(browser, tmp_path):
  settings = web_fixtures.settings_for(tmp_path / "unused-model",
                                       web_fixtures.write_tiny_data(tmp_path / "data"),
                                       tmp_path / "work", api_key="sesame")
  with launch.ServerThread(web_fixtures.make_app(settings)) as server:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/")
    page.wait_for_selector("#error:not([hidden])")
    assert "401" in page.inner_text("#error")
    page.fill("#api-key", "sesame")
    page.press("#api-key", "Tab")  # change event: stored, and the page starts again
    page.wait_for_selector("body[data-ready='1']")
    assert page.is_hidden("#error")
    page.reload()
    page.wait_for_selector("body[data-ready='1']")  # the key came back from localStorage
    assert page.input_value("#api-key") == "sesame"
    context.close()


def test_stop_ends_a_running_fine_tune(page):
  page.click("nav a[data-page='finetune']")
  page.fill("[name=max_steps]", "100000")
  page.click("#ft-start")
  wait_until(page, "document.getElementById('ft-state').textContent == 'running'")
  page.click("#ft-stop")
  wait_until(page, "document.getElementById('ft-state').textContent == 'stopped'")
  assert page.is_enabled("#ft-start")
  page.click("#ft-resume")  # the trainer starts again in the job's folder
  wait_until(page, "document.getElementById('ft-state').textContent == 'running'")
  assert page.is_disabled("#ft-resume") and page.is_disabled("#ft-delete")
  page.click("#ft-stop")
  wait_until(page, "document.getElementById('ft-state').textContent == 'stopped'")


def test_evaluate_and_predict_shows_the_scores_and_answers_beside_labels(browser, tmp_path):
  from tests.serve.test_web import finished_job  # pylint: disable=g-import-not-at-top
  model_dir = web_fixtures.write_citing_model(tmp_path / "model")
  data_dir = web_fixtures.write_tiny_data(tmp_path / "data")
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work")
  finished_job(settings.work_dir, model_dir, data_dir)
  with launch.ServerThread(web_fixtures.make_app(settings)) as server:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/#finetune")
    wait_until(page, "document.getElementById('ft-state').textContent == 'finished'")
    assert page.eval_on_selector_all("#pr-dataset option", "os => os.map(o => o.value)") == [
        "tiny", "tiny_prefs"]
    page.fill("[name=max_new_tokens]", "0")
    page.click("#pr-start")
    page.wait_for_selector("#error:not([hidden])")
    assert "max_new_tokens" in page.inner_text("#error")
    page.fill("[name=max_new_tokens]", "3")
    page.fill("#pr-form [name=max_samples]", "2")
    page.click("#pr-start")
    wait_until(page, "document.getElementById('pr-state').dataset.state == 'finished'",
               timeout=90_000)
    scores = page.locator("#pr-scores tbody td").all_inner_texts()
    assert len(scores) == 4 and all(re.fullmatch(r"\d+\.\d\d", s) for s in scores), scores
    cells = [page.locator(f"#pr-sample tbody tr:nth-child({i}) td").all_inner_texts()
             for i in (1, 2)]
    # the citing model answers "[1]" each time, beside the labels of the tiny set
    assert [c[1:] for c in cells] == [["[1] [1] [1]", "w40 w41"], ["[1] [1] [1]", "w41 w41"]]
    assert page.is_hidden("#error")
    context.close()


def _greedy_words(model_dir, text: str, count: int) -> list[str]:
  """The model's greedy answer by full recomputation (no KV cache, no server), word by
  word: what the chat page must show when it talks to that model."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import research  # pylint: disable=g-import-not-at-top
  lm = research.load_model(str(model_dir))
  tok = lm.tokenizer
  ids = tok.encode(tok.apply_chat_template([{"role": "user", "content": text}],
                                           add_generation_prompt=True))
  words = []
  for _ in range(count):
    logits_1xLxV, _ = lm.model(jnp.asarray([ids]))
    token = int(jnp.argmax(logits_1xLxV[0, -1]))
    if token == tok.eos_id:
      break
    ids.append(token)
    words.append(tok.decode([token]))
  return words


def test_chat_with_a_fine_tune_export_without_restarting(browser, tmp_path):
  """The loop closed: a finished job's export -> "Chat with this model" -> its answer. The
  job folder is prepared as jobs.py leaves an export (a real fine-tune is test_a_tiny_...
  above); its export is the citing model with its logits kept, so it answers otherwise than
  the served model's "[1] [1] ..."."""
  import shutil  # pylint: disable=g-import-not-at-top
  from tests.serve.test_web import finished_job  # pylint: disable=g-import-not-at-top
  model_dir = web_fixtures.write_citing_model(tmp_path / "model")
  data_dir = web_fixtures.write_tiny_data(tmp_path / "data")
  settings = web_fixtures.settings_for(model_dir, data_dir, tmp_path / "work")
  job_dir = finished_job(settings.work_dir, model_dir, data_dir)
  shutil.rmtree(job_dir / "export")
  export = web_fixtures.write_citing_model(job_dir / "export", zero_logits=False)
  expected = _greedy_words(export, "w10 w11", 4)
  assert expected and expected != ["[1]"] * len(expected), expected
  with launch.ServerThread(web_fixtures.make_app(settings)) as server:
    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/#finetune")
    wait_until(page, "document.getElementById('ft-state').textContent == 'finished'")
    page.click("#ft-chat")
    page.wait_for_selector("#page-chat", state="visible")
    assert page.input_value("#chat-model") == f"ft-{job_dir.name}"
    page.fill("#s-temperature", "0")
    page.fill("#s-num_predict", "4")
    page.fill("#chat-input", "w10 w11")
    page.press("#chat-input", "Enter")
    wait_until(page, "document.querySelectorAll('.msg.assistant').length == 1 && "
                     "!document.querySelector('.msg.streaming')")
    assert page.inner_text(".msg.assistant .text").split() == expected
    assert page.is_hidden("#error")
    context.close()
