// The `faceoverlay` element: GObject/GStreamer glue in imp.rs; the drawing itself in
// crate::draw.

use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct FaceOverlay(ObjectSubclass<imp::FaceOverlay>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "faceoverlay",
        gst::Rank::NONE,
        FaceOverlay::static_type(),
    )
}
