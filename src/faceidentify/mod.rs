// The `faceidentify` element: GObject/GStreamer glue in imp.rs; galleries and matching in
// crate::gallery.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceIdentify(ObjectSubclass<imp::FaceIdentify>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    imp::Metric::static_type().mark_as_plugin_api(gst::PluginAPIFlags::empty());
    gst::Element::register(
        Some(plugin),
        "faceidentify",
        gst::Rank::NONE,
        FaceIdentify::static_type(),
    )
}
