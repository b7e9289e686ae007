//! Guardrail policies: built-in detectors, validators and the compiled scanner.
