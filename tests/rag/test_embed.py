import numpy as np
import pytest

from research.rag import embed

SENTENCES = [
    "The cat sat on the mat.",
    "x",
    "Ünïcödé naïve café — 日本語のテキスト, and an emoji 🙂.",
    "A long sentence that goes past the 256-token limit of the model. " * 40,
    "How do I reset my password?",
]


@pytest.fixture(scope="module")
def embedder():
  return embed.load_minilm(batch_size=4)


@pytest.mark.slow
def test_embeddings_equal_sentence_transformers(embedder):
  sentence_transformers = pytest.importorskip("sentence_transformers")
  reference = sentence_transformers.SentenceTransformer(str(embed.package_dir()), device="cpu")
  want_NxD = reference.encode(SENTENCES, normalize_embeddings=True)
  got_NxD = embedder.encode(SENTENCES)
  cosine_N = (got_NxD * want_NxD).sum(1) / np.linalg.norm(want_NxD, axis=1)
  assert cosine_N.min() >= 0.9999, cosine_N
  assert reference.max_seq_length == embedder.max_length


def test_rows_are_unit_and_do_not_depend_on_the_batch(embedder):
  alone_NxD = np.concatenate([embedder.encode([s]) for s in SENTENCES[:3]])
  together_NxD = embedder.encode(SENTENCES[:3])
  np.testing.assert_allclose(np.linalg.norm(together_NxD, axis=1), 1.0, atol=1e-5)
  np.testing.assert_allclose(alone_NxD, together_NxD, atol=1e-5)
  assert embedder.encode([]).shape == (0, embedder.dim)


def test_similar_sentences_are_closer(embedder):
  a, b, c = embedder.encode(["How do I reset my password?", "I forgot my password",
                             "The weather is sunny today"])
  assert a @ b > a @ c + 0.2


def test_lengths_go_to_buckets():
  assert [embed.bucket(n, 256) for n in (1, 16, 17, 100, 256, 300)] == [16, 16, 32, 128, 256, 256]


def test_count_tokens_is_not_truncated(embedder):
  long = SENTENCES[3]
  assert embedder.count_tokens([long])[0] > embedder.max_length
  assert len(embedder.token_ids([long])[0]) == embedder.max_length
