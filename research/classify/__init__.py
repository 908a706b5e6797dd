"""In-context classification: a class list, one demonstration per class as chat history,
then the text; decoded by label scoring (default) or generate-then-match."""

from research.classify.classifier import CONTENT_FREE
from research.classify.classifier import ICLClassifier
from research.classify.metrics import accuracy
from research.classify.metrics import macro_f1

__all__ = ["CONTENT_FREE", "ICLClassifier", "accuracy", "macro_f1"]
