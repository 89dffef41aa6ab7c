//! The pure domain: no API client, no registry client, no printing.

pub mod catalog;
pub mod container;
pub mod helm;
pub mod inventory;
pub mod podtemplate;
pub mod values;
