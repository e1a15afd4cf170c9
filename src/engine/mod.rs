//! Computation: forward pass (and, with training, backward pass, losses and
//! optimizers).

pub mod forward;
