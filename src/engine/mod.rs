//! Computation: forward pass (and, with training, backward pass, losses and
//! optimizers).

pub mod backward;
pub mod forward;
pub mod fpmode;
pub mod gemm;
pub mod graph;
pub mod im2col;
pub mod loss;
pub mod metrics;
pub mod optimizer;
pub mod pool;
pub mod schedule;
pub mod session;
pub mod sparsify;
pub mod train;
