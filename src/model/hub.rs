//! Downloading full ImageNet VGG weights from the Hugging Face Hub (timm's releases).

use crate::error::{Error, Result};
use hf_hub::api::sync::ApiBuilder;
use hf_hub::api::Progress;
use hf_hub::Cache;
use std::path::PathBuf;

pub const HUB_FILE: &str = "model.safetensors";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HubModel {
    Vgg16,
    Vgg19,
}

crate::named::named_enum!(HubModel);

impl HubModel {
    pub const ALL: [HubModel; 2] = [HubModel::Vgg16, HubModel::Vgg19];

    pub fn name(&self) -> &'static str {
        match self {
            HubModel::Vgg16 => "vgg16",
            HubModel::Vgg19 => "vgg19",
        }
    }

    pub fn repo(&self) -> &'static str {
        match self {
            HubModel::Vgg16 => "timm/vgg16.tv_in1k",
            HubModel::Vgg19 => "timm/vgg19.tv_in1k",
        }
    }

    /// Where a user without network gets the file by hand.
    pub fn manual_url(&self) -> String {
        format!("https://huggingface.co/{}/resolve/main/{HUB_FILE}", self.repo())
    }

    /// The downloaded file in the local Hugging Face cache (`HF_HOME`), if present.
    pub fn cached(&self) -> Option<PathBuf> {
        Cache::from_env().model(self.repo().to_string()).get(HUB_FILE)
    }

    /// Download (or find in the cache) the weights. `endpoint` overrides the hub address
    /// (otherwise `HF_ENDPOINT` or huggingface.co).
    pub fn fetch(&self, endpoint: Option<&str>, progress: impl Progress) -> Result<PathBuf> {
        if let Some(p) = self.cached() {
            return Ok(p);
        }
        let mut builder = ApiBuilder::from_env().with_progress(false).with_retries(1);
        if let Some(e) = endpoint {
            builder = builder.with_endpoint(e.trim_end_matches('/').to_string());
        }
        let api = builder.build().map_err(|e| Error::Download(format!("cannot set up the hub client: {e}")))?;
        let repo = api.model(self.repo().to_string());
        let url = repo.url(HUB_FILE);
        repo.download_with_progress(HUB_FILE, progress).map_err(|e| {
            Error::Download(format!(
                "could not download {url} ({}). Offline? Get {} by hand and run with --model /path/to/{HUB_FILE}",
                crate::error::one_line(&e.to_string()),
                self.manual_url()
            ))
        })
    }
}
