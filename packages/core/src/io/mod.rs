//! I/O readiness: the reactor that turns epoll events into task wake-ups.
pub mod reactor;
