//! The feature repository: a TOML file of entities, feature views and feature services.
//! (To be completed: parsing, validation with clear errors.)
