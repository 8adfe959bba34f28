//! The routing model of a TCP canary, no sockets: Kubernetes resources read from YAML or JSON ([`load`]), typed
//! ([`model`]), the expected split derived from them with its provenance ([`derive`]),
//! and the routing mistakes found in them ([`lint`]).

pub mod derive;
pub mod lint;
pub mod load;
pub mod model;
pub mod version;

pub use derive::{
    Derivation, DeriveError, DeriveOptions, DerivedDestination, DestinationMember, OptionNames,
    Provenance, Remedy, SelectedBy, VersionSource, derive,
};
pub use load::{LoadError, load_sources};
pub use model::{ManifestSet, ModelError};

/// Why manifests cannot be read into a [`ManifestSet`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A source cannot be read or parsed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A document is not a usable resource.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Reads every source (files, directories, `-`) into one typed set.
pub fn read<S: AsRef<str>>(sources: &[S]) -> Result<ManifestSet, ReadError> {
    Ok(ManifestSet::from_documents(load_sources(sources)?)?)
}
