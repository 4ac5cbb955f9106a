//! prune-pvcs e2e tests (to be written).
