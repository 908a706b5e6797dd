"""In-context classification with a pretrained chat model.

  python -m experiments.classify --text "The central bank raised rates."   # one sentence
  python -m experiments.classify                        # label scoring on the fixture
  python -m experiments.classify --calibrate            # ... with contextual calibration
  python -m experiments.classify --mode=generate        # generate-then-match
  python -m experiments.classify --mode=all             # every decoder: the BENCHMARKS table
  python -m experiments.classify --model=some/base --adapter=saves/lora/sft   # a PEFT adapter
  python -m experiments.classify --yaml=examples/inference/llama3_lora_sft.yaml

--yaml takes LLaMA-Factory's inference file for the model and its adapter.
"""

import sys

from absl import flags

from experiments import script
from experiments.chapters import classify
from experiments.configs import classify as classify_config
from research import tour
from research.finetune import config as config_lib
from research.classify import ICLClassifier

_MODEL = flags.DEFINE_string("model", "smollm2-135m-instruct",
                             "A packaged model's name, a .gguf file or an HF directory.")
_ADAPTER = flags.DEFINE_string("adapter", None, "A PEFT LoRA adapter folder put on --model.")
_YAML = flags.DEFINE_string("yaml", None, "LLaMA-Factory's inference YAML instead of --model.")
_DATA = flags.DEFINE_string("data", "experiments/data/classify/topics.json",
                            "JSON with 'demonstrations' (class -> example) and 'test' rows.")
_QUANTIZED = flags.DEFINE_bool("quantized", True, "Keep a GGUF's Q8_0 / Q4_1 weights in their "
                                "blocks (fast); false: dequantize them to float32.")
_MODE = flags.DEFINE_enum("mode", "score", ["score", "generate", "all"],
                          "Label scoring, generate-then-match, or every decoder.")
_CALIBRATE = flags.DEFINE_bool("calibrate", False, "Contextual calibration (score mode).")
_NORMALIZE = flags.DEFINE_bool("normalize_length", False,
                               "Mean log-prob per label token (score mode).")
_TEXT = flags.DEFINE_string("text", None, "Classify this sentence instead of evaluating.")
_QUICK = flags.DEFINE_bool("quick", False, "16 sentences and one demonstration order.")
_ORDERINGS = flags.DEFINE_integer("orderings", None, "Demonstration orders (default 3).")
_PER_CLASS = flags.DEFINE_integer("per_class", None, "Sentences per class (0: all).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/classify", "Where results are written.")


def _decoders():
  if _MODE.value == "all":
    return classify_config.get_config().decoders
  if _MODE.value == "generate":
    return ["generate"]
  return ["score" + ("+length" if _NORMALIZE.value else "") +
          ("+calibrate" if _CALIBRATE.value else "")]


def model_and_adapter() -> tuple[str, str]:
  """--model and --adapter, or the model_name_or_path and adapter_name_or_path of --yaml."""
  if _YAML.value:
    config = config_lib.inference_from_yaml(_YAML.value)
    return config.model, config.adapter_name_or_path
  return _MODEL.value, _ADAPTER.value or ""


def classify_one(text: str) -> None:
  import research  # pylint: disable=g-import-not-at-top
  demos, _, _ = classify.load_fixture(_DATA.value)
  mode = "generate" if _MODE.value == "generate" else "score"
  model, adapter = model_and_adapter()
  clf = ICLClassifier(research.load_model(model, adapter=adapter or None,
                                          quantized=_QUANTIZED.value), demos, mode=mode,
                      calibrate=_CALIBRATE.value, normalize_length=_NORMALIZE.value)
  if mode == "generate":
    answer = clf.generate([text])[0]
    print(f"answer: {answer!r} -> {clf.predict([text])[0]}")
    return
  proba = clf.predict_proba([text])[0]
  for label, p in sorted(zip(clf.classes, proba), key=lambda lp: -lp[1]):
    print(f"{label:>12s}  {p:.3f}")
  print(f"-> {clf.classes[int(proba.argmax())]}")


def main(argv):
  del argv
  if _TEXT.value is not None:
    classify_one(_TEXT.value)
    return 0
  config = classify_config.get_config("quick" if _QUICK.value else None)
  config.model, config.adapter = model_and_adapter()
  config.data, config.decoders = _DATA.value, _decoders()
  if _ORDERINGS.value is not None:
    config.orderings = _ORDERINGS.value
  if _PER_CLASS.value is not None:
    config.per_class = _PER_CLASS.value
  tour.run_and_print(classify.run_experiment, config, _WORKDIR.value)
  return 0


if __name__ == "__main__":
  script.run(lambda argv: sys.exit(main(argv)))
