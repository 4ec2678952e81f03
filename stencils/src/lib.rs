//! Stencil tables and the semantics shared between the stencils and the interpreter.
#![no_std]

pub mod abi;
pub mod semantics;
