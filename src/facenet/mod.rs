// The `facenet` element: GObject/GStreamer glue in imp.rs; the work is done by
// crate::preprocess (pixels to tensor) and crate::backend (ONNX Runtime).

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceNet(ObjectSubclass<imp::FaceNet>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    imp::Aspect::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    imp::Normalization::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    imp::ChannelOrder::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    imp::InferenceRegion::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    imp::AlignmentMode::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    crate::inference::ExecutionProvider::static_type()
        .mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "facenet",
        gst::Rank::NONE,
        FaceNet::static_type(),
    )
}
