//! gst-facenet: face embeddings for GStreamer.
//!
//! The `facenet` element runs a face-embedding model (FaceNet and similar) through ONNX
//! Runtime on each video frame and attaches the embedding as a `FaceNetEmbeddingMeta`
//! custom meta ([`EmbeddingMeta`] reads it from Rust).
#![allow(clippy::non_send_fields_in_send_ty, unused_doc_comments)]

use gst::glib;

pub mod align;
pub mod backend;
pub mod detection;
pub mod draw;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod gallery;
pub mod meta;
pub mod preprocess;

mod facedetect;
mod faceidentify;
mod facenet;
mod faceoverlay;
mod inference;

pub use meta::EmbeddingMeta;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    // Statically registered (tests, facenet-enroll) there is no file.
    if let Some(file) = plugin.filename() {
        backend::set_installed_from(&file);
    }
    meta::register();
    inference::register_onnxruntime_log();
    facenet::register(plugin)?;
    facedetect::register(plugin)?;
    faceidentify::register(plugin)?;
    faceoverlay::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    facenet,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
