// Reference side of the face-api -> ONNX check.
//
// Runs face-api's own FaceRecognitionNet (weights loaded from the package's model/ directory by
// face-api's own loader) on the pure-JS tfjs 'cpu' backend, and writes, for every test case, the
// exact normalized float tensor the network consumed plus the descriptor face-api returned.
// verify.py then feeds those tensors to the ONNX model.
//
// usage: node verify.mjs [out_dir]   (default: ../out/faceapi_verify)
//
// Output files in out_dir:
//   cases.json       metadata (face-api/tfjs versions, per-case name/kind/source/shape)
//   inputs_nhwc.f32  float32 little-endian [n, 150, 150, 3]  (RGB, (x - mean) / 255)
//   embeddings.f32   float32 little-endian [n, 128]          computeFaceDescriptor() output

import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
// node-wasm build: requires only @tensorflow/tfjs (+ tfjs-backend-wasm, which we do not use),
// no tfjs-node native binaries.
const faceapi = require('@vladmandic/face-api/dist/face-api.node-wasm.js');
const jpeg = require('jpeg-js');

const { tf } = faceapi;
const pkgDir = path.dirname(require.resolve('@vladmandic/face-api/package.json'));
const modelDir = path.join(pkgDir, 'model');
const outDir = path.resolve(process.argv[2] || path.join(here, '..', 'out', 'faceapi_verify'));

const SIZE = 150;
const MEAN_RGB = [122.782, 117.001, 104.298]; // FaceRecognitionNet.ts
const MAX_FACES_PER_IMAGE = 3;

// Deterministic PRNG (mulberry32) for noise images.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function noiseImage(seed, h, w, smooth) {
  const rnd = mulberry32(seed);
  const data = new Int32Array(h * w * 3);
  if (!smooth) {
    for (let i = 0; i < data.length; i++) data[i] = Math.floor(rnd() * 256);
  } else {
    // low-frequency blobs + noise: activations closer to natural images than white noise
    const c = [rnd(), rnd(), rnd(), rnd(), rnd(), rnd()];
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        for (let ch = 0; ch < 3; ch++) {
          const v = 128 + 90 * Math.sin((x * c[ch] + y * c[ch + 3]) / 9 + ch) + 30 * (rnd() - 0.5);
          data[(y * w + x) * 3 + ch] = Math.max(0, Math.min(255, Math.round(v)));
        }
      }
    }
  }
  return tf.tensor3d(data, [h, w, 3], 'int32');
}

// Same steps as FaceRecognitionNet.forwardInput up to the first conv, built from face-api's own
// exported helpers: toNetInput -> toBatchTensor(150, true) (centred zero pad + resizeBilinear)
// -> cast float32 -> normalize(meanRgb) -> div(255).
async function normalizedInput(img) {
  const netInput = await faceapi.toNetInput(img);
  return tf.tidy(() => {
    const batch = tf.cast(netInput.toBatchTensor(SIZE, true), 'float32');
    return faceapi.normalize(batch, MEAN_RGB).div(255);
  });
}

async function main() {
  const cases = []; // { name, kind, source, shape, img }

  // Real faces: the demo photos shipped in the npm package, face boxes from face-api's own
  // SSD MobileNet v1 detector, cropped with face-api's extractFaceTensors on the cpu backend.
  // Detection only picks the boxes (it is not under test) and takes ~30 s per photo on the
  // pure-JS cpu backend, so it runs on the tfjs wasm backend (shipped .wasm, no native code)
  // when that initializes, else on cpu.
  const demoDir = path.join(pkgDir, 'demo');
  const samples = fs.readdirSync(demoDir).filter((f) => /^sample\d+\.jpg$/.test(f)).sort();
  if (samples.length === 0) throw new Error(`no demo/sample*.jpg in ${demoDir}`);
  const photos = samples.map((file) => {
    const d = jpeg.decode(fs.readFileSync(path.join(demoDir, file)), { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
    return { file, width: d.width, height: d.height, data: Int32Array.from(d.data) };
  });
  const toTensor = (p) => tf.tensor3d(p.data, [p.height, p.width, 3], 'int32');

  let detectBackend = 'cpu';
  try {
    tf.setWasmPaths(`${path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json'))}/dist/`);
    if (await tf.setBackend('wasm')) detectBackend = 'wasm';
  } catch (err) {
    console.warn(`wasm backend unavailable (${err.message}); detecting faces on cpu (slow)`);
  }
  if (detectBackend !== 'wasm') await tf.setBackend('cpu');
  await tf.ready();
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(modelDir);
  for (const p of photos) {
    const t0 = Date.now();
    const image = toTensor(p);
    const dets = await faceapi.detectAllFaces(image, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5, maxResults: 50 }));
    image.dispose();
    dets.sort((a, b) => b.score - a.score || a.box.x - b.box.x);
    p.dets = dets.slice(0, MAX_FACES_PER_IMAGE);
    console.log(`${p.file}: ${p.width}x${p.height}, ${dets.length} faces detected (${detectBackend}, ${Date.now() - t0} ms), using ${p.dets.length}`);
  }
  faceapi.nets.ssdMobilenetv1.dispose();

  // Everything below (cropping, preprocessing, recognition) runs on the pure-JS cpu backend.
  await tf.setBackend('cpu');
  await tf.ready();
  if (tf.getBackend() !== 'cpu') throw new Error(`backend is ${tf.getBackend()}, wanted cpu`);
  await faceapi.nets.faceRecognitionNet.loadFromDisk(modelDir);

  // Noise: 150x150 (fed as-is) and non-square sizes (exercise padToSquare + resizeBilinear).
  const noiseSpecs = [
    [1, 150, 150, false], [2, 150, 150, false], [3, 150, 150, true], [4, 150, 150, true],
    [5, 97, 203, false], [6, 211, 160, true], [7, 64, 64, true], [8, 300, 300, false],
  ];
  for (const [seed, h, w, smooth] of noiseSpecs) {
    cases.push({
      name: `noise-${seed}-${h}x${w}${smooth ? '-smooth' : ''}`,
      kind: 'noise',
      source: `mulberry32 seed ${seed}`,
      img: noiseImage(seed, h, w, smooth),
    });
  }

  for (const p of photos) {
    if (!p.dets.length) continue;
    const image = toTensor(p);
    const crops = await faceapi.extractFaceTensors(image, p.dets);
    image.dispose();
    crops.forEach((crop, i) => {
      const b = p.dets[i].box;
      cases.push({
        name: `${p.file.replace('.jpg', '')}-face${i}`,
        kind: 'face',
        source: `@vladmandic/face-api/demo/${p.file} box x=${Math.round(b.x)} y=${Math.round(b.y)} w=${Math.round(b.width)} h=${Math.round(b.height)} score=${p.dets[i].score.toFixed(3)}`,
        img: crop,
      });
    });
  }

  const n = cases.length;
  const inputs = new Float32Array(n * SIZE * SIZE * 3);
  const embeddings = new Float32Array(n * 128);
  const meta = [];
  const t1 = Date.now();
  for (let i = 0; i < n; i++) {
    const c = cases[i];
    const norm = await normalizedInput(c.img);
    inputs.set(await norm.data(), i * SIZE * SIZE * 3);
    norm.dispose();
    // face-api's own public API, on the un-normalized (any-size) image tensor:
    const desc = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(c.img);
    if (!(desc instanceof Float32Array) || desc.length !== 128) throw new Error(`bad descriptor for ${c.name}`);
    embeddings.set(desc, i * 128);
    if (tf.getBackend() !== 'cpu') throw new Error('backend changed');
    meta.push({ name: c.name, kind: c.kind, source: c.source, shape: c.img.shape });
    c.img.dispose();
  }

  console.log(`computed ${n} descriptors with face-api in ${Date.now() - t1} ms`);
  fs.mkdirSync(outDir, { recursive: true });
  if (os.endianness() !== 'LE') throw new Error('big-endian host: output would not be LE');
  const le = (arr) => Buffer.from(arr.buffer, arr.byteOffset, arr.byteLength);
  fs.writeFileSync(path.join(outDir, 'inputs_nhwc.f32'), le(inputs));
  fs.writeFileSync(path.join(outDir, 'embeddings.f32'), le(embeddings));
  fs.writeFileSync(path.join(outDir, 'cases.json'), `${JSON.stringify({
    faceapi: faceapi.version,
    tfjs: tf.version_core,
    backend: tf.getBackend(),
    detection_backend: detectBackend,
    size: SIZE,
    mean_rgb: MEAN_RGB,
    std: 255,
    layout: { inputs: 'float32 LE [n,150,150,3] NHWC RGB', embeddings: 'float32 LE [n,128]' },
    cases: meta,
  }, null, 1)}\n`);
  console.log(`face-api ${faceapi.version}, tfjs ${tf.version_core}, backend ${tf.getBackend()}: wrote ${n} cases (${meta.filter((m) => m.kind === 'face').length} faces) to ${outDir}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
