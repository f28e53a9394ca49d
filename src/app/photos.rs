//! The photos of this session: the one on screen, the one loading, those opened before (the
//! switch sources on offer) and the current photo's folder (PageUp/PageDown).

use super::shown::Photo;
use std::path::{Path, PathBuf};

#[derive(Default)]
pub struct Photos {
    pub current: Option<Photo>,
    /// The photo being loaded (id, path); the current one stays until it arrives.
    pub loading: Option<(u64, PathBuf)>,
    /// Photos opened in this run, newest last.
    pub history: Vec<(u64, PathBuf)>,
    /// The photos of the current photo's folder.
    pub folder: Vec<PathBuf>,
    /// The last id given out (ids start at 1).
    last_id: u64,
}

impl Photos {
    fn new_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }

    /// The id of the photo at `path`: the one it had when it was opened in this run, else a new one.
    pub fn id_of(&mut self, path: &Path) -> u64 {
        match self.history.iter().find(|(_, p)| p == path) {
            Some((id, _)) => *id,
            None => self.new_id(),
        }
    }

    /// The current photo's id.
    pub fn current_id(&self) -> Option<u64> {
        self.current.as_ref().map(|p| p.id)
    }

    /// A photo is being loaded from `path`: its new id.
    pub fn start_loading(&mut self, path: &Path) -> u64 {
        let id = self.new_id();
        self.loading = Some((id, path.to_path_buf()));
        id
    }

    /// Photo `id` failed to load or arrived: it is no longer loading.
    pub fn done_loading(&mut self, id: u64) {
        if self.loading.as_ref().is_some_and(|(i, _)| *i == id) {
            self.loading = None;
        }
    }

    /// A photo arrived: it is shown, its folder read (once per folder), its place in the history
    /// the newest.
    pub fn arrived(&mut self, photo: Photo) {
        self.done_loading(photo.id);
        if let Some(dir) = photo.path.parent() {
            let same_folder = self.folder.first().and_then(|p| p.parent()) == Some(dir);
            if !same_folder || !self.folder.contains(&photo.path) {
                self.folder = crate::data::photos_in(dir).unwrap_or_default();
            }
        }
        self.history.retain(|(_, p)| p != &photo.path);
        self.history.push((photo.id, photo.path.clone()));
        self.current = Some(photo);
    }

    /// The photo `step` places from the current one in its folder, if that is another photo.
    pub fn step(&self, step: i32) -> Option<PathBuf> {
        let photo = self.current.as_ref()?;
        let i = self.folder.iter().position(|p| p == &photo.path)?;
        let j = (i as i32 + step).clamp(0, self.folder.len() as i32 - 1) as usize;
        (j != i).then(|| self.folder[j].clone())
    }
}
