//! What Python sees that is not a primitive or a task: module functions and cancel scopes.
pub mod functions;
pub mod io;
pub mod scope;
