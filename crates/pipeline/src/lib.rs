//! The pipeline file, sagebrush.toml: parsing, validation with file:line:column errors, and parameter resolution.
