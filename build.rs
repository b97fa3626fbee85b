fn main() {
    // The ONNX Runtime library a plain build loads when neither the `onnxruntime-library`
    // property nor ORT_DYLIB_PATH names one: the Makefile points this at the pinned,
    // project-local library it extracted, so `make build` gives a plugin that works as is.
    println!("cargo:rerun-if-env-changed=GST_FACENET_ORT_DYLIB");
    if let Ok(path) = std::env::var("GST_FACENET_ORT_DYLIB") {
        println!("cargo:rustc-env=GST_FACENET_DEFAULT_ORT_DYLIB={path}");
    }
    gst_plugin_version_helper::info()
}
