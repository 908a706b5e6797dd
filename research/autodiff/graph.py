"""A reverse-mode autodiff engine on a computational graph, small enough to read at one sitting.

Every op builds a `Node` holding its forward value (a float64 numpy array, 0-d for scalars) and a
`backward` rule mapping the gradient of the loss w.r.t. the node's output to the gradients w.r.t.
its inputs. `backward(loss)` visits nodes in reverse topological order, so each node's upstream
gradient is complete, computed once, before it is handed to its inputs.

  x, w, b, y_gt = constant(1.5), leaf(0.8, "w"), leaf(0.2, "b"), constant(0.8)
  y = w * x + b                      # 1.4
  loss = 0.5 * (y - y_gt) ** 2       # 0.18
  backward(loss)                     # w.grad = 0.9, b.grad = 0.6
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

Array = np.ndarray


@dataclasses.dataclass(eq=False)
class Node:
  """One value in the graph: what computed it, from which inputs, and (after backward) dL/dvalue."""
  value: Array
  op: str = "leaf"
  inputs: tuple[Node, ...] = ()
  rule: Callable[[Array], Sequence[Array]] | None = None  # grad_out -> one grad per input
  name: str = ""
  requires_grad: bool = True
  grad: Array | None = None
  edge_grads: tuple[Array, ...] = ()  # what backward sent to each input along its edge
  backward_calls: int = 0

  @property
  def shape(self):
    return self.value.shape

  @property
  def label(self) -> str:
    return self.name or self.op

  def __add__(self, other):
    return add(self, other)

  __radd__ = __add__

  def __sub__(self, other):
    return add(self, _negate(_node(other)))

  def __rsub__(self, other):
    return add(_node(other), _negate(self))

  def __neg__(self):
    return mul(self, -1.0)

  def __mul__(self, other):
    return mul(self, other)

  __rmul__ = __mul__

  def __truediv__(self, other):
    return mul(self, power(_node(other), -1.0))

  def __matmul__(self, other):
    return matmul(self, other)

  def __rmatmul__(self, other):
    return matmul(other, self)

  def __pow__(self, exponent: float):
    return power(self, exponent)


def leaf(value, name: str = "") -> Node:
  """An input we want the gradient of (a parameter, or x when we ask for dL/dx)."""
  return Node(np.asarray(value, dtype=np.float64), name=name)


def constant(value, name: str = "") -> Node:
  """An input that receives no gradient (data, targets, fixed numbers)."""
  return Node(np.asarray(value, dtype=np.float64), op="const", name=name, requires_grad=False)


def _node(x) -> Node:
  return x if isinstance(x, Node) else constant(x, name=_short(np.asarray(x, np.float64)))


def _negate(a: Node) -> Node:
  if a.requires_grad:
    return mul(a, -1.0)
  name = f"-{a.name}" if a.name and a.name != _short(a.value) else _short(-a.value)
  return constant(-a.value, name=name)  # a constant's negation is just a constant


def _short(value: Array) -> str:
  return f"{float(value):.4g}" if value.size == 1 else f"array{value.shape}"


def _unbroadcast(grad: Array, shape) -> Array:
  """Sums grad over the axes numpy broadcasting added or stretched, back to `shape`."""
  while grad.ndim > len(shape):
    grad = grad.sum(axis=0)
  for axis, size in enumerate(shape):
    if size == 1 and grad.shape[axis] != 1:
      grad = grad.sum(axis=axis, keepdims=True)
  return grad


def _make(op: str, value, inputs: Sequence[Node], rule, name: str = "") -> Node:
  return Node(np.asarray(value, dtype=np.float64), op=op, inputs=tuple(inputs), rule=rule,
              name=name, requires_grad=any(n.requires_grad for n in inputs))


# ---------------------------------------------------------------------------------------------
# Ops: forward value and backward rule side by side.


def add(a, b, name: str = "") -> Node:
  a, b = _node(a), _node(b)
  # z = a + b  =>  dz/da = 1, dz/db = 1
  return _make("add", a.value + b.value, (a, b),
               lambda g: (_unbroadcast(g, a.shape), _unbroadcast(g, b.shape)), name)


def mul(a, b, name: str = "") -> Node:
  a, b = _node(a), _node(b)
  # z = a * b  =>  dL/da = g * b, dL/db = g * a
  return _make("mul", a.value * b.value, (a, b),
               lambda g: (_unbroadcast(g * b.value, a.shape),
                          _unbroadcast(g * a.value, b.shape)), name)


def matmul(a, b, name: str = "") -> Node:
  """Matrix-matrix or matrix-vector product (2-d @ 2-d, 2-d @ 1-d, 1-d @ 2-d, 1-d @ 1-d)."""
  a, b = _node(a), _node(b)
  A = a.value[None, :] if a.value.ndim == 1 else a.value  # pylint: disable=invalid-name
  B = b.value[:, None] if b.value.ndim == 1 else b.value  # pylint: disable=invalid-name

  def rule(g):
    G = np.asarray(g).reshape(A.shape[0], B.shape[1])  # pylint: disable=invalid-name
    # Z = A B  =>  dL/dA = G B^T, dL/dB = A^T G
    return (G @ B.T).reshape(a.shape), (A.T @ G).reshape(b.shape)

  return _make("matmul", a.value @ b.value, (a, b), rule, name)


def power(a, exponent: float, name: str = "") -> Node:
  a = _node(a)
  p = float(exponent)
  # z = a^p  =>  dz/da = p a^(p-1)
  return _make(f"pow {p:g}", a.value ** p, (a,), lambda g: (g * p * a.value ** (p - 1),), name)


def exp(a, name: str = "") -> Node:
  a = _node(a)
  out = np.exp(a.value)
  return _make("exp", out, (a,), lambda g: (g * out,), name)  # (e^a)' = e^a


def log(a, name: str = "") -> Node:
  a = _node(a)
  return _make("log", np.log(a.value), (a,), lambda g: (g / a.value,), name)  # (log a)' = 1/a


def tanh(a, name: str = "") -> Node:
  a = _node(a)
  out = np.tanh(a.value)
  return _make("tanh", out, (a,), lambda g: (g * (1.0 - out ** 2),), name)  # tanh' = 1 - tanh^2


def sigmoid(a, name: str = "") -> Node:
  a = _node(a)
  out = 1.0 / (1.0 + np.exp(-a.value))
  # s' = s (1 - s): the backward needs only the forward output
  return _make("sigmoid", out, (a,), lambda g: (g * out * (1.0 - out),), name)


def relu(a, name: str = "") -> Node:
  a = _node(a)
  return _make("relu", np.maximum(a.value, 0.0), (a,), lambda g: (g * (a.value > 0),), name)


def sum(a, axis=None, name: str = "") -> Node:  # pylint: disable=redefined-builtin
  a = _node(a)

  def rule(g):
    g = np.asarray(g)
    if axis is not None:
      g = np.expand_dims(g, axis)
    return (np.broadcast_to(g, a.shape).copy(),)  # every summand gets the same gradient

  return _make("sum", np.sum(a.value, axis=axis), (a,), rule, name)


def mean(a, axis=None, name: str = "") -> Node:
  a = _node(a)
  count = a.value.size if axis is None else a.value.shape[axis]
  return mul(sum(a, axis=axis), 1.0 / count, name=name or "mean")


# ---------------------------------------------------------------------------------------------
# The backward pass.


def topological_order(root: Node) -> list[Node]:
  """Inputs before the nodes computed from them (depth-first, iterative so deep graphs work)."""
  order, seen = [], set()
  stack = [(root, False)]
  while stack:
    node, expanded = stack.pop()
    if expanded:
      order.append(node)
      continue
    if id(node) in seen:
      continue
    seen.add(id(node))
    stack.append((node, True))
    stack.extend((n, False) for n in reversed(node.inputs) if id(n) not in seen)
  return order


def backward(root: Node, grad=None) -> list[Node]:
  """Fills `.grad` of every node that leads to root with dL/dnode; returns the nodes visited.

  In reverse topological order a node comes after everything that uses it, so by the time its
  rule runs its upstream gradient is final: the rule runs once and its output is reused by all
  its inputs (the two-layer chain's dL/dh feeds both dL/dW1 and dL/db1).
  """
  order = topological_order(root)
  for node in order:
    node.grad = None
  root.grad = np.ones_like(root.value) if grad is None else np.asarray(grad, np.float64)
  for node in reversed(order):
    if node.rule is None or node.grad is None or not node.requires_grad:
      continue
    node.edge_grads = tuple(np.asarray(g, np.float64) for g in node.rule(node.grad))
    node.backward_calls += 1
    for parent, g in zip(node.inputs, node.edge_grads):
      if parent.requires_grad:
        parent.grad = g if parent.grad is None else parent.grad + g  # dL/da = sum over uses
  return order
