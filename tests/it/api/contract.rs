//! The OpenAPI document, problem documents, bad inputs.
