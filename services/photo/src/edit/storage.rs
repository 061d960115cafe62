//! Our own storage for edit inputs and results (provider URLs expire in 24 h). The service talks
//! to an [`ObjectStore`]; [`LocalDirStore`] keeps objects in a directory (with several photo
//! instances, one volume they all mount), and an S3-compatible store can implement the same
//! trait later.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("invalid object key {0:?}")]
    InvalidKey(String),
    #[error("storage i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Objects by key (`edits/<task id>/result-0.png`). Writes are atomic: a reader sees the whole
/// object or none.
pub trait ObjectStore: Send + Sync {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StorageError>>;
    /// None when there is no such object.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StorageError>>;
    /// The object in chunks, read as they are taken; None when there is no such object.
    fn read_chunks<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectChunks>, StorageError>>;
    /// Deletes the object if it exists; true when there was one to delete.
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>>;
}

pub type SharedStore = Arc<dyn ObjectStore>;

/// An object being read: its whole length and its bytes in chunks, in order.
pub struct ObjectChunks {
    pub len: u64,
    pub chunks: BoxStream<'static, Result<Vec<u8>, StorageError>>,
}

/// Bytes per chunk of an object read in chunks.
pub const CHUNK_BYTES: usize = 64 * 1024;

/// Keys are made by us, but are checked anyway: no way out of the root directory.
fn check_key(key: &str) -> Result<(), StorageError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/');
    let parts_ok = key
        .split('/')
        .all(|part| !part.is_empty() && part != "." && part != "..");
    if key.is_empty() || key.len() > 240 || !key.chars().all(allowed) || !parts_ok {
        return Err(StorageError::InvalidKey(key.to_owned()));
    }
    Ok(())
}

/// Objects as files under a root directory.
pub struct LocalDirStore {
    root: PathBuf,
}

impl LocalDirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

impl ObjectStore for LocalDirStore {
    fn put<'a>(&'a self, key: &'a str, bytes: Vec<u8>) -> BoxFuture<'a, Result<(), StorageError>> {
        Box::pin(async move {
            let path = self.path(key)?;
            if let Some(dir) = path.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            // Written beside, then renamed: readers never see half an object.
            let partial = path.with_extension(format!("partial-{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&partial, &bytes).await?;
            if let Err(err) = tokio::fs::rename(&partial, &path).await {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(err.into());
            }
            Ok(())
        })
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Vec<u8>>, StorageError>> {
        Box::pin(async move {
            match tokio::fs::read(self.path(key)?).await {
                Ok(bytes) => Ok(Some(bytes)),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(err) => Err(err.into()),
            }
        })
    }

    fn read_chunks<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<ObjectChunks>, StorageError>> {
        Box::pin(async move {
            let file = match tokio::fs::File::open(self.path(key)?).await {
                Ok(file) => file,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(err) => return Err(err.into()),
            };
            // The open file stays readable even if the object is deleted meanwhile.
            let len = file.metadata().await?.len();
            let chunks = futures::stream::try_unfold(file, |mut file| async move {
                use tokio::io::AsyncReadExt as _;
                let mut chunk = vec![0; CHUNK_BYTES];
                let read = file.read(&mut chunk).await?;
                if read == 0 {
                    return Ok(None);
                }
                chunk.truncate(read);
                Ok(Some((chunk, file)))
            });
            Ok(Some(ObjectChunks {
                len,
                chunks: Box::pin(chunks),
            }))
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<bool, StorageError>> {
        Box::pin(async move {
            match tokio::fs::remove_file(self.path(key)?).await {
                Ok(()) => Ok(true),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(err) => Err(err.into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn objects_are_written_read_and_deleted() {
        let root =
            std::env::temp_dir().join(format!("xintu-store-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalDirStore::new(&root);
        store
            .put("edits/abc/result-0.png", b"png".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store
                .get("edits/abc/result-0.png")
                .await
                .unwrap()
                .as_deref(),
            Some(&b"png"[..])
        );
        store
            .put("edits/abc/result-0.png", b"new".to_vec())
            .await
            .unwrap();
        assert_eq!(
            store.get("edits/abc/result-0.png").await.unwrap().unwrap(),
            b"new"
        );
        assert!(store.delete("edits/abc/result-0.png").await.unwrap());
        assert!(!store.delete("edits/abc/result-0.png").await.unwrap());
        assert!(store.get("edits/abc/result-0.png").await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(root);
    }

    #[tokio::test]
    async fn objects_are_read_in_chunks_in_order() {
        use futures::TryStreamExt as _;
        let root =
            std::env::temp_dir().join(format!("xintu-store-{}", uuid::Uuid::new_v4().simple()));
        let store = LocalDirStore::new(&root);
        let object: Vec<u8> = (0..CHUNK_BYTES * 2 + 100)
            .map(|i| (i % 251) as u8)
            .collect();
        store
            .put("edits/abc/result-0.png", object.clone())
            .await
            .unwrap();
        let read = store
            .read_chunks("edits/abc/result-0.png")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.len, object.len() as u64);
        let chunks: Vec<Vec<u8>> = read.chunks.try_collect().await.unwrap();
        assert!(chunks.iter().all(|c| c.len() <= CHUNK_BYTES));
        assert_eq!(chunks.concat(), object);
        assert!(
            store
                .read_chunks("edits/abc/none.png")
                .await
                .unwrap()
                .is_none()
        );
        let _ = std::fs::remove_dir_all(root);
    }

    #[tokio::test]
    async fn keys_cannot_leave_the_root() {
        let store = LocalDirStore::new(std::env::temp_dir().join("xintu-store-keys"));
        for key in ["../etc/passwd", "edits/../../x", "/abs", "a//b", "a b", ""] {
            assert!(
                matches!(store.get(key).await, Err(StorageError::InvalidKey(_))),
                "{key}"
            );
        }
    }
}
