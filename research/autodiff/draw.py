"""Pictures of a computational graph: Graphviz DOT text, and a PNG drawn with matplotlib alone.

Each edge input -> op carries the forward value flowing along it and, after `graph.backward`,
the gradient flowing back along it ("1.5 / g 0.9").
"""

from __future__ import annotations

import numpy as np

from research.autodiff import graph


def _fmt(value) -> str:
  value = np.asarray(value)
  if value.size == 1:
    return f"{float(value):.4g}"
  return f"{value.shape} max|{np.abs(value).max():.3g}|"


def _edge_label(parent: graph.Node, child: graph.Node, index: int) -> str:
  text = _fmt(parent.value)
  if len(child.edge_grads) > index and parent.requires_grad:
    text += f" / g {_fmt(child.edge_grads[index])}"
  return text


def _node_label(node: graph.Node) -> str:
  head = node.label if node.op in ("leaf", "const") or not node.name else f"{node.name} = {node.op}"
  text = head if head == _fmt(node.value) else f"{head}\n{_fmt(node.value)}"
  if node.grad is not None:
    text += f"\ngrad {_fmt(node.grad)}"
  return text


def to_dot(root: graph.Node) -> str:
  """Graphviz DOT source: boxes for values, arrows labelled 'forward value / gradient'."""
  order = graph.topological_order(root)
  ids = {id(n): f"n{i}" for i, n in enumerate(order)}
  lines = ["digraph G {", "  rankdir=LR;", "  node [shape=box, fontname=Helvetica];"]
  for node in order:
    label = _node_label(node).replace('"', "'").replace("\n", "\\n")
    style = ', style=dashed' if not node.requires_grad else ""
    lines.append(f'  {ids[id(node)]} [label="{label}"{style}];')
  for node in order:
    for i, parent in enumerate(node.inputs):
      label = _edge_label(parent, node, i).replace('"', "'")
      lines.append(f'  {ids[id(parent)]} -> {ids[id(node)]} [label="{label}"];')
  lines.append("}")
  return "\n".join(lines) + "\n"


def layout(root: graph.Node) -> dict[int, tuple[float, float]]:
  """Column = longest path from an input, inputs just left of their first use; rows spread
  evenly within a column."""
  order = graph.topological_order(root)
  column = {}
  for node in order:
    column[id(node)] = 1 + max((column[id(p)] for p in node.inputs), default=-1)
  placed = set()
  for node in order:  # move each input next to the op that first uses it
    for parent in node.inputs:
      if not parent.inputs and id(parent) not in placed:
        column[id(parent)] = column[id(node)] - 1
        placed.add(id(parent))
  by_column: dict[int, list[graph.Node]] = {}
  for node in order:
    by_column.setdefault(column[id(node)], []).append(node)
  pos = {}
  for c, nodes in by_column.items():
    for r, node in enumerate(nodes):
      pos[id(node)] = (float(c), (len(nodes) - 1) / 2.0 - r)
  return pos


def draw(root: graph.Node, title: str | None = None):
  """A matplotlib figure of the graph (no system Graphviz needed)."""
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  order = graph.topological_order(root)
  pos = layout(root)
  columns = 1 + max(x for x, _ in pos.values())
  rows = 1 + max(y for _, y in pos.values()) - min(y for _, y in pos.values())
  fig, ax = plt.subplots(figsize=(3.0 * columns + 1, 1.6 * rows + 1))
  for node in order:
    for i, parent in enumerate(node.inputs):
      (x0, y0), (x1, y1) = pos[id(parent)], pos[id(node)]
      ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                  arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=28, shrinkB=28))
      ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, _edge_label(parent, node, i),
              ha="center", va="bottom", fontsize=7, color="tab:blue")
  for node in order:
    x, y = pos[id(node)]
    face = "0.92" if not node.requires_grad else ("#fde8c8" if node.rule is None else "#dbe9f6")
    ax.text(x, y, _node_label(node), ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="round", facecolor=face, edgecolor="0.3"))
  ax.set_xlim(-0.6, columns - 0.4)
  ys = [y for _, y in pos.values()]
  ax.set_ylim(min(ys) - 0.7, max(ys) + 0.7)
  ax.axis("off")
  if title:
    ax.set_title(title, fontsize=10)
  return fig
