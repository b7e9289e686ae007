//! Guardrail policies: built-in detectors, validators and the compiled scanner.
//!
//! Entry points: [`ScannerBuilder`] (add built-in and user rules, compile once) and
//! [`Scanner::scan`] (one pass over a text, validated and overlap-resolved matches).
//! All matching uses the `regex` crate, which runs in linear time: no policy pattern can
//! cause catastrophic backtracking.

pub mod detectors;
pub mod fold;
pub mod injection;
pub mod scanner;
mod shapes;
pub mod validators;

pub use detectors::{builtin_specs, kinds};
pub use scanner::{
    BuildError, Category, CheckFn, DetectorSpec, Match, Matcher, RuleError, RuleInfo, Scanner,
    ScannerBuilder, DEFAULT_UNBOUNDED_CAP,
};
