"""Framework ops written the way a framework writes them: a forward that saves what the backward
needs (the residuals), and a backward that maps the output gradient to input gradients."""

import jax
import jax.numpy as jnp


@jax.custom_vjp
def multiply(x, y):
  return x * y


def _multiply_fwd(x, y):
  return x * y, (x, y)  # the backward needs both inputs


def _multiply_bwd(residuals, grad_z):
  x, y = residuals
  return grad_z * y, grad_z * x  # z = x y  =>  dL/dx = g y, dL/dy = g x


multiply.defvjp(_multiply_fwd, _multiply_bwd)


@jax.custom_vjp
def sigmoid(x):
  return 1.0 / (1.0 + jnp.exp(-x))


def _sigmoid_fwd(x):
  s = 1.0 / (1.0 + jnp.exp(-x))
  return s, s  # keep the output, not x: the derivative is a function of s alone


def _sigmoid_bwd(s, grad_out):
  return (grad_out * s * (1.0 - s),)  # s' = s (1 - s)


sigmoid.defvjp(_sigmoid_fwd, _sigmoid_bwd)
