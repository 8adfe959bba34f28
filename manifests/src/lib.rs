//! The routing model of a TCP canary, no sockets: Kubernetes resources read from YAML or JSON ([`load`]), typed
//! ([`model`]), the expected split derived from them with its provenance ([`derive`]),
//! and the routing mistakes found in them ([`lint`]). Kustomize directories are rendered
//! with `kubectl kustomize` ([`kustomize`]), the one process this crate runs.

pub mod derive;
pub mod kustomize;
pub mod lint;
pub mod load;
pub mod model;
pub mod version;

pub use derive::{
    Derivation, DeriveError, DeriveOptions, DerivedDestination, DestinationMember, OptionNames,
    Provenance, Remedy, SelectedBy, TlsChoice, VersionSource, derive,
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
    /// A kustomize directory cannot be rendered.
    #[error(transparent)]
    Render(#[from] kustomize::RenderError),
}

/// Reads every source (files, directories, `-`) into one typed set; a kustomize
/// directory is read as a plain directory (see [`read_rendering`]).
pub fn read<S: AsRef<str>>(sources: &[S]) -> Result<ManifestSet, ReadError> {
    Ok(ManifestSet::from_documents(load_sources(sources)?)?)
}

/// Reads every source into one typed set as [`read`] does, but renders each kustomize
/// directory (one holding a `kustomization.yaml`) with `kubectl kustomize` first.
pub fn read_rendering<S: AsRef<str>>(
    sources: &[S],
    kustomize: &kustomize::Kustomize,
) -> Result<ManifestSet, ReadError> {
    let mut documents = Vec::new();
    for source in sources {
        let source = source.as_ref();
        let path = std::path::Path::new(source);
        if source != "-" && kustomize::is_kustomization(path) {
            documents.extend(kustomize.render(path)?);
        } else {
            documents.extend(load::load_source(source)?);
        }
    }
    Ok(ManifestSet::from_documents(documents)?)
}
