import matplotlib.pyplot as plt

from research import files
from research.autodiff import draw
from research.autodiff import graph as g


def _example():
  w, b = g.leaf(0.8, "w"), g.leaf(0.2, "b")
  y = g.add(g.mul(w, g.constant(1.5, "x")), b, name="y")
  loss = g.mul(g.power(y - 0.8, 2), 0.5, name="L")
  g.backward(loss)
  return loss


def test_dot_shows_values_and_gradients_on_edges():
  dot = draw.to_dot(_example())
  assert dot.startswith("digraph G {") and dot.rstrip().endswith("}")
  assert 'label="0.8 / g 0.9"' in dot  # w -> mul: value 0.8 flows forward, dL/dw = 0.9 back
  assert 'label="1.4 / g 0.6"' in dot  # y -> its use: value 1.4, dL/dy = 0.6
  assert dot.count("->") == 9


def test_png_is_drawn_without_graphviz(tmp_path):
  fig = draw.draw(_example(), title="L = (wx + b - y)^2 / 2")
  path = files.save_figure(fig, tmp_path / "graph.png")
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert plt.get_fignums() == []
