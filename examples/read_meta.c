/* Reading gst-facenet's metadata from C.
 *
 *   cc examples/read_meta.c -o read_meta $(pkg-config --cflags --libs gstreamer-1.0 gstreamer-video-1.0 gstreamer-app-1.0)
 *   GST_PLUGIN_PATH=target/release ./read_meta IMAGE.jpg MODELS_DIR [GALLERY.json]
 *
 * Runs  filesrc ! decodebin ! videoconvert ! facedetect ! facenet inference-region=roi-list
 *       [! faceidentify] ! appsink
 * on one image and prints, for every face region: its box, detection confidence, the first
 * embedding values (param "facenet-embedding") and the identity (param "faceidentify").
 * Full-frame mode (inference-region=full-frame) puts the embedding on the buffer instead:
 * gst_buffer_get_custom_meta (buf, "FaceNetEmbeddingMeta"), read the same way. */
#include <gst/gst.h>
#include <gst/app/gstappsink.h>
#include <gst/video/video.h>

static void
print_embedding (const GstStructure * s)
{
  const GValue *array = gst_structure_get_value (s, "embedding");
  guint dimension = 0;
  gboolean fresh = FALSE;
  gst_structure_get_uint (s, "dimension", &dimension);
  gst_structure_get_boolean (s, "fresh", &fresh);
  g_print ("    embedding: %u values from %s (fresh %d): [", dimension,
      gst_structure_get_string (s, "model"), fresh);
  for (guint i = 0; array && i < gst_value_array_get_size (array) && i < 4; i++)
    g_print ("%s%.4f", i ? ", " : "",
        g_value_get_float (gst_value_array_get_value (array, i)));
  g_print (", ...]\n");
}

int
main (int argc, char **argv)
{
  if (argc < 3) {
    g_printerr ("usage: %s IMAGE MODELS_DIR [GALLERY.json]\n", argv[0]);
    return 2;
  }
  gst_init (&argc, &argv);
  gchar *identify = argc > 3 ? g_strdup_printf ("! faceidentify gallery=\"%s\"", argv[3]) : g_strdup ("");
  gchar *description = g_strdup_printf ("filesrc location=\"%s\" ! decodebin ! videoconvert ! "
      "facedetect model-location=\"%s/faceapi_ssd_mobilenetv1.onnx\" "
      "landmark-model-location=\"%s/faceapi_landmark68.onnx\" ! "
      "facenet model-location=\"%s/faceapi_resnet128.onnx\" inference-region=roi-list %s ! "
      "appsink name=sink", argv[1], argv[2], argv[2], argv[2], identify);
  GError *error = NULL;
  GstElement *pipeline = gst_parse_launch (description, &error);
  if (!pipeline) {
    g_printerr ("pipeline: %s\n", error->message);
    return 1;
  }
  GstElement *sink = gst_bin_get_by_name (GST_BIN (pipeline), "sink");
  gst_element_set_state (pipeline, GST_STATE_PLAYING);
  GstSample *sample = gst_app_sink_pull_sample (GST_APP_SINK (sink));
  if (!sample) {
    GstMessage *msg = gst_bus_pop_filtered (GST_ELEMENT_BUS (pipeline), GST_MESSAGE_ERROR);
    if (msg) {
      gst_message_parse_error (msg, &error, NULL);
      g_printerr ("error: %s\n", error->message);
    }
    return 1;
  }
  GstBuffer *buf = gst_sample_get_buffer (sample);
  gpointer state = NULL;
  GstMeta *meta;
  guint faces = 0;
  while ((meta = gst_buffer_iterate_meta_filtered (buf, &state,
              GST_VIDEO_REGION_OF_INTEREST_META_API_TYPE))) {
    GstVideoRegionOfInterestMeta *roi = (GstVideoRegionOfInterestMeta *) meta;
    GstStructure *detection = gst_video_region_of_interest_meta_get_param (roi, "face-detection");
    GstStructure *embedding = gst_video_region_of_interest_meta_get_param (roi, "facenet-embedding");
    GstStructure *who = gst_video_region_of_interest_meta_get_param (roi, "faceidentify");
    gdouble confidence = 0, distance = 0;
    if (detection)
      gst_structure_get_double (detection, "confidence", &confidence);
    g_print ("face %d (%s) at %u,%u %ux%u, confidence %.3f\n", roi->id,
        g_quark_to_string (roi->roi_type), roi->x, roi->y, roi->w, roi->h, confidence);
    if (embedding)
      print_embedding (embedding);
    if (who) {
      gst_structure_get_double (who, "distance", &distance);
      g_print ("    identity: %s (distance %.3f)\n", gst_structure_get_string (who, "label"), distance);
    }
    faces++;
  }
  g_print ("%u faces\n", faces);
  gst_sample_unref (sample);
  gst_element_set_state (pipeline, GST_STATE_NULL);
  gst_object_unref (sink);
  gst_object_unref (pipeline);
  g_free (description);
  g_free (identify);
  return 0;
}
