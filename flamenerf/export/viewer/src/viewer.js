// Copyright 2026 The flamenerf Authors. Licensed under the Apache License, Version 2.0.
//
// The avatar viewer: the page that flamenerf/export/page.py writes (index.html) runs this
// bundle. It reads the glb inlined in the page (base64 in <script id="avatar-glb">), shows it
// with three.js, and drives the FLAME rig with sliders. The asset (avatar.glb, written by
// flamenerf/export/gltf.py), the DOM, the test API (window.flamenerf) and the pose maths are the
// avatar asset contract; the Python preview (flamenerf/export/preview.py) implements the same
// maths and tests/export/test_viewer_browser.py compares the two renders.
//
// Built by build.mjs (esbuild) into dist/viewer.min.js, one minified IIFE, no network access.

import * as THREE from 'three';
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js';
import { GLTFLoader } from 'three/examples/jsm/loaders/GLTFLoader.js';

const CONTRACT_VERSION = 1;
const LONG_SIDE = 512; // CSS pixels of the canvas' longer side at the default camera
const MAX_SUPERSAMPLE = 4; // samples per pixel along each axis (16 per pixel)
const MAX_SUPERSAMPLED_SIDE = 2048; // device pixels along the longer side of the sampled image
const X_AXIS = new THREE.Vector3(1, 0, 0);
const Y_AXIS = new THREE.Vector3(0, 1, 0);

function fail(message) {
  const box = document.getElementById('error');
  if (box) {
    box.textContent = message;
    box.hidden = false;
  }
  return new Error(message);
}

function decodeGlb() {
  const element = document.getElementById('avatar-glb');
  if (!element) throw fail('the page has no <script id="avatar-glb"> holding the asset');
  const text = atob(element.textContent.replace(/\s+/g, ''));
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes.buffer;
}

function parseGlb(buffer) {
  return new Promise((resolve, reject) => {
    new GLTFLoader().parse(buffer, '', resolve, (error) =>
      reject(fail(`avatar.glb could not be read: ${error && error.message ? error.message : error}`)),
    );
  });
}

function checkedExtras(gltf) {
  const extras = gltf.asset && gltf.asset.extras && gltf.asset.extras.flamenerf;
  if (!extras) throw fail('avatar.glb: asset.extras.flamenerf is missing');
  if (extras.version !== CONTRACT_VERSION) {
    throw fail(`avatar.glb: asset.extras.flamenerf.version is ${extras.version}, expected ${CONTRACT_VERSION}`);
  }
  for (const key of ['expression_names', 'expression_ranges', 'jaw_range', 'yaw_range', 'pitch_range', 'default_camera']) {
    if (extras[key] === undefined) throw fail(`avatar.glb: asset.extras.flamenerf.${key} is missing`);
  }
  return extras;
}

// ---------------------------------------------------------------------------------------------
// Supersampling (anti-aliasing): the scene is drawn at k times the canvas' size into a float
// render target (linear colours), then each canvas pixel is the mean of its k x k samples, each
// sRGB-encoded: what the Python preview computes (flamenerf/export/preview.py, `supersample`),
// and what a camera's pixel does (it averages the light over its area). k = 1: one sample at
// the pixel's centre, drawn straight to the canvas.

// The default k for a canvas: as many samples as fit MAX_SUPERSAMPLED_SIDE, at most MAX_SUPERSAMPLE.
function defaultSupersample(width, height, pixelRatio) {
  const side = Math.max(width, height) * pixelRatio;
  return Math.max(1, Math.min(MAX_SUPERSAMPLE, Math.floor(MAX_SUPERSAMPLED_SIDE / side)));
}

const RESOLVE_VERTEX = `
void main() {
  gl_Position = vec4(position.xy, 0.0, 1.0);
}`;

const RESOLVE_FRAGMENT = `
uniform sampler2D samples;
uniform int k;
vec3 srgb(vec3 linear) {
  vec3 x = clamp(linear, 0.0, 1.0);
  return mix(1.055 * pow(x, vec3(1.0 / 2.4)) - 0.055, 12.92 * x, vec3(lessThanEqual(x, vec3(0.0031308))));
}
void main() {
  ivec2 corner = ivec2(gl_FragCoord.xy) * k;
  vec3 sum = vec3(0.0);
  for (int j = 0; j < ${MAX_SUPERSAMPLE}; j++) {
    if (j >= k) break;
    for (int i = 0; i < ${MAX_SUPERSAMPLE}; i++) {
      if (i >= k) break;
      sum += srgb(texelFetch(samples, corner + ivec2(i, j), 0).rgb);
    }
  }
  gl_FragColor = vec4(sum / float(k * k), 1.0);
}`;

class Supersampler {
  constructor() {
    this.target = new THREE.WebGLRenderTarget(1, 1, {
      type: THREE.HalfFloatType,
      minFilter: THREE.NearestFilter,
      magFilter: THREE.NearestFilter,
      generateMipmaps: false,
      depthBuffer: true,
    });
    this.material = new THREE.ShaderMaterial({
      uniforms: { samples: { value: this.target.texture }, k: { value: 1 } },
      vertexShader: RESOLVE_VERTEX,
      fragmentShader: RESOLVE_FRAGMENT,
      depthTest: false,
      depthWrite: false,
    });
    const quad = new THREE.Mesh(new THREE.PlaneGeometry(2, 2), this.material);
    quad.frustumCulled = false;
    this.scene = new THREE.Scene();
    this.scene.add(quad);
    this.camera = new THREE.OrthographicCamera(-1, 1, 1, -1, 0, 1);
  }

  // Draws `scene` seen by `camera` with k x k samples per pixel of the renderer's canvas;
  // returns what the scene's own pass drew (renderer.info.render of that pass).
  render(renderer, scene, camera, k) {
    let drawn;
    if (k <= 1) {
      renderer.setRenderTarget(null);
      renderer.render(scene, camera);
      drawn = { ...renderer.info.render };
    } else {
      const size = renderer.getDrawingBufferSize(new THREE.Vector2());
      if (this.target.width !== size.x * k || this.target.height !== size.y * k) {
        this.target.setSize(size.x * k, size.y * k);
      }
      this.material.uniforms.k.value = k;
      renderer.setRenderTarget(this.target);
      renderer.render(scene, camera);
      drawn = { ...renderer.info.render };
      renderer.setRenderTarget(null);
      renderer.render(this.scene, this.camera);
    }
    return drawn;
  }
}

function quaternionAbout(axis, angle) {
  return new THREE.Quaternion().setFromAxisAngle(axis, angle);
}

// ---------------------------------------------------------------------------------------------
// Controls (DOM)

function slider(panel, id, label, range) {
  const row = document.createElement('label');
  row.className = 'row';
  const name = document.createElement('span');
  name.textContent = label;
  const input = document.createElement('input');
  input.type = 'range';
  input.id = id;
  input.min = String(range[0]);
  input.max = String(range[1]);
  input.step = 'any'; // setParams must reach the exact value the test asks for
  input.value = '0';
  const value = document.createElement('output');
  value.textContent = Number(input.value).toFixed(3);
  input.addEventListener('input', () => {
    value.textContent = Number(input.value).toFixed(3);
  });
  row.append(name, input, value);
  panel.append(row);
  return { input, value };
}

function setSlider(entry, number) {
  entry.input.value = String(number);
  entry.value.textContent = Number(entry.input.value).toFixed(3);
}

function buildPanel(extras, animations) {
  const panel = document.getElementById('controls');
  const buttons = document.createElement('div');
  buttons.className = 'buttons';
  const play = document.createElement('button');
  play.id = 'play';
  play.type = 'button';
  play.textContent = 'play';
  const reset = document.createElement('button');
  reset.id = 'reset';
  reset.type = 'button';
  reset.textContent = 'reset';
  buttons.append(play, reset);
  let select = null;
  if (animations.length > 0) {
    select = document.createElement('select');
    select.id = 'animation';
    for (const clip of animations) {
      const option = document.createElement('option');
      option.value = clip.name;
      option.textContent = clip.name;
      select.append(option);
    }
    buttons.append(select);
  } else {
    play.disabled = true;
    play.title = 'the asset has no animation (export with --animation FOLDER)';
  }
  panel.append(buttons);
  const head = document.createElement('h2');
  head.textContent = 'head pose (rad)';
  panel.append(head);
  const pose = {
    jaw: slider(panel, 'jaw', 'jaw', extras.jaw_range),
    yaw: slider(panel, 'yaw', 'yaw', extras.yaw_range),
    pitch: slider(panel, 'pitch', 'pitch', extras.pitch_range),
  };
  const title = document.createElement('h2');
  title.textContent = 'expression';
  panel.append(title);
  const expression = extras.expression_names.map((name, i) =>
    slider(panel, `expression-${String(i).padStart(2, '0')}`, name, extras.expression_ranges[i]),
  );
  return { play, reset, select, expression, ...pose };
}

// ---------------------------------------------------------------------------------------------
// The viewer

async function start(api) {
  const canvas = document.getElementById('view');
  const gltf = await parseGlb(decodeGlb());
  const extras = checkedExtras(gltf);
  const scene = gltf.scene;
  const headNode = scene.getObjectByName('head');
  const neck = scene.getObjectByName('neck');
  const jaw = scene.getObjectByName('jaw');
  if (!headNode || !neck || !jaw) throw fail('avatar.glb: the nodes "head", "neck" and "jaw" are expected');
  const morphed = [];
  headNode.traverse((object) => {
    if (object.morphTargetInfluences) morphed.push(object);
  });
  const count = extras.expression_names.length;
  for (const mesh of morphed) {
    if (mesh.morphTargetInfluences.length !== count) {
      throw fail(`avatar.glb: the head has ${mesh.morphTargetInfluences.length} morph targets, expected ${count}`);
    }
  }
  const meshes = [];
  scene.traverse((object) => {
    if (object.isMesh) {
      object.frustumCulled = false; // bounds are the rest pose's; posed vertices move
      meshes.push(object);
    }
  });
  const neckRest = neck.quaternion.clone();

  const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  renderer.setClearColor(0x000000, 1);

  // Camera: the asset's default camera, its projection matrix used as given (principal point
  // off centre included); OrbitControls orbits around a target on the view axis, with the
  // camera's own up vector as the orbit's up.
  const camera = new THREE.PerspectiveCamera();
  const defaults = extras.default_camera;
  // The head's rest-pose box (its vertices are stored in the world frame): the orbit's centre.
  // Not Box3.setFromObject: a SkinnedMesh's box needs bone matrices, which the first render makes.
  scene.updateMatrixWorld(true);
  const bounds = new THREE.Box3();
  headNode.traverse((object) => {
    if (object.isMesh) {
      object.geometry.computeBoundingBox();
      bounds.union(object.geometry.boundingBox.clone().applyMatrix4(object.matrixWorld));
    }
  });
  let manual = false; // setCamera: the orbit controls wait for the user's next drag
  let size = [0, 0];
  let supersample = 1; // samples per pixel along each axis (setCamera may set it)
  let fixedSupersample = false; // setCamera chose it: resizes keep it
  const sampler = new Supersampler();
  let drawn = { triangles: 0, calls: 0 }; // the scene's pass of the last render

  function placeCamera(worldFromCamera, projection) {
    const matrix = new THREE.Matrix4().fromArray(worldFromCamera);
    matrix.decompose(camera.position, camera.quaternion, camera.scale);
    camera.scale.set(1, 1, 1);
    camera.projectionMatrix.fromArray(projection);
    camera.projectionMatrixInverse.copy(camera.projectionMatrix).invert();
    camera.updateMatrixWorld(true);
  }

  function orbitTarget() {
    const forward = new THREE.Vector3(0, 0, -1).applyQuaternion(camera.quaternion);
    const centre = bounds.isEmpty() ? new THREE.Vector3() : bounds.getCenter(new THREE.Vector3());
    let distance = centre.clone().sub(camera.position).dot(forward);
    if (!(distance > 1e-6)) distance = Math.max(camera.position.distanceTo(centre), 1e-3);
    return camera.position.clone().addScaledVector(forward, distance);
  }

  function resize(width, height, pixelRatio) {
    renderer.setPixelRatio(pixelRatio);
    renderer.setSize(width, height, true);
    size = [width, height];
    if (!fixedSupersample) supersample = defaultSupersample(width, height, pixelRatio);
  }

  const defaultScale = LONG_SIDE / Math.max(defaults.width, defaults.height);
  resize(Math.round(defaults.width * defaultScale), Math.round(defaults.height * defaultScale), window.devicePixelRatio || 1);
  placeCamera(defaults.world_from_camera, defaults.projection);
  camera.up.set(0, 1, 0).applyQuaternion(camera.quaternion);
  const target = orbitTarget(); // before the controls' constructor turns the camera to (0, 0, 0)
  const controls = new OrbitControls(camera, canvas);
  controls.target.copy(target);
  controls.update();
  placeCamera(defaults.world_from_camera, defaults.projection); // exactly the default camera
  controls.saveState();

  const ui = buildPanel(extras, gltf.animations);
  const mixer = new THREE.AnimationMixer(scene);
  let last = performance.now(); // the animation's clock (ms)
  let action = null;
  let dirty = true;

  function params() {
    return {
      expression: ui.expression.map((entry) => Number(entry.input.value)),
      jaw: Number(ui.jaw.input.value),
      yaw: Number(ui.yaw.input.value),
      pitch: Number(ui.pitch.input.value),
    };
  }

  // The contract's pose maths: morph weights = coefficients; neck = rest * R_y(yaw) * R_x(pitch);
  // jaw = R_x(jaw); translations stay at rest.
  function applyParams() {
    const p = params();
    for (const mesh of morphed) {
      for (let i = 0; i < count; i++) mesh.morphTargetInfluences[i] = p.expression[i];
    }
    neck.quaternion.copy(neckRest).multiply(quaternionAbout(Y_AXIS, p.yaw)).multiply(quaternionAbout(X_AXIS, p.pitch));
    jaw.quaternion.copy(quaternionAbout(X_AXIS, p.jaw));
    dirty = true;
  }

  // While an animation plays, the sliders show its current values (the inverse of applyParams).
  function slidersFromPose() {
    const mesh = morphed[0];
    if (mesh) ui.expression.forEach((entry, i) => setSlider(entry, mesh.morphTargetInfluences[i]));
    const local = neckRest.clone().invert().multiply(neck.quaternion);
    const euler = new THREE.Euler().setFromQuaternion(local, 'YXZ'); // R_y(yaw) R_x(pitch) R_z
    setSlider(ui.yaw, euler.y);
    setSlider(ui.pitch, euler.x);
    setSlider(ui.jaw, new THREE.Euler().setFromQuaternion(jaw.quaternion, 'XYZ').x);
  }

  function stopAnimation() {
    if (action) {
      mixer.stopAllAction();
      action = null;
    }
    ui.play.textContent = 'play';
  }

  for (const entry of [...ui.expression, ui.jaw, ui.yaw, ui.pitch]) {
    entry.input.addEventListener('input', () => {
      stopAnimation(); // the user takes over
      applyParams();
    });
  }
  ui.play.addEventListener('click', () => {
    if (action && !action.paused) {
      action.paused = true;
      ui.play.textContent = 'play';
      return;
    }
    if (action) {
      action.paused = false;
    } else {
      const clip = gltf.animations.find((c) => c.name === ui.select.value) || gltf.animations[0];
      action = mixer.clipAction(clip);
      action.setLoop(THREE.LoopRepeat, Infinity);
      action.play();
    }
    ui.play.textContent = 'pause';
    last = performance.now();
  });
  if (ui.select) {
    ui.select.addEventListener('change', () => {
      stopAnimation();
      applyParams();
    });
  }
  ui.reset.addEventListener('click', () => {
    stopAnimation();
    for (const entry of [...ui.expression, ui.jaw, ui.yaw, ui.pitch]) setSlider(entry, 0);
    applyParams();
    manual = false;
    fixedSupersample = false;
    const scale = LONG_SIDE / Math.max(defaults.width, defaults.height);
    resize(Math.round(defaults.width * scale), Math.round(defaults.height * scale), window.devicePixelRatio || 1);
    controls.reset();
    placeCamera(defaults.world_from_camera, defaults.projection);
    dirty = true;
  });

  controls.addEventListener('start', () => {
    if (manual) {
      manual = false; // the user drags: orbit from where setCamera put the camera
      controls.target.copy(orbitTarget());
    }
  });
  controls.addEventListener('change', () => {
    dirty = true;
  });

  function render() {
    drawn = sampler.render(renderer, scene, camera, supersample);
    dirty = false;
  }

  function loop() {
    requestAnimationFrame(loop);
    const now = performance.now();
    const delta = (now - last) / 1000;
    last = now;
    if (action && !action.paused) {
      mixer.update(delta);
      slidersFromPose();
      dirty = true;
    }
    if (dirty) render();
  }

  const gl = renderer.getContext();
  const pixel = new Uint8Array(4);
  function finish() {
    gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel); // waits for the frame
  }

  function rendererName() {
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    return String(gl.getParameter(debug ? debug.UNMASKED_RENDERER_WEBGL : gl.RENDERER));
  }

  Object.assign(api, {
    // supersample: k x k samples per pixel (1 to MAX_SUPERSAMPLE), kept until reset; 'auto'
    // (or null): the page's default for the canvas' size; undefined: unchanged.
    setCamera({ world_from_camera, projection, width, height, supersample: samples }) {
      if (!world_from_camera || world_from_camera.length !== 16 || !projection || projection.length !== 16) {
        throw new Error('setCamera: world_from_camera and projection must be 16 numbers (column-major)');
      }
      const fixed = samples !== undefined && samples !== null && samples !== 'auto';
      if (fixed && !(Number.isInteger(samples) && samples >= 1 && samples <= MAX_SUPERSAMPLE)) {
        throw new Error(`setCamera: supersample is ${samples}, expected an integer from 1 to ${MAX_SUPERSAMPLE} or 'auto'`);
      }
      if (samples !== undefined) fixedSupersample = fixed;
      if (fixed) supersample = samples;
      if (width !== undefined || height !== undefined) resize(width ?? size[0], height ?? size[1], 1);
      else if (!fixedSupersample) supersample = defaultSupersample(size[0], size[1], renderer.getPixelRatio());
      const limit = renderer.capabilities.maxTextureSize;
      const side = Math.max(size[0], size[1]) * renderer.getPixelRatio() * supersample;
      if (supersample > 1 && side > limit) {
        throw new Error(`setCamera: ${supersample} x ${supersample} samples per pixel need ${side} pixels, more than this WebGL's ${limit}`);
      }
      manual = true;
      placeCamera(world_from_camera, projection);
      dirty = true;
    },
    setParams({ expression, jaw, yaw, pitch } = {}) {
      const changes = [];
      (expression || []).forEach((value, i) => {
        if (i >= ui.expression.length) throw new Error(`setParams: expression has ${expression.length} values, the asset ${count}`);
        changes.push([ui.expression[i], value]);
      });
      if (jaw !== undefined) changes.push([ui.jaw, jaw]);
      if (yaw !== undefined) changes.push([ui.yaw, yaw]);
      if (pitch !== undefined) changes.push([ui.pitch, pitch]);
      for (const [entry, value] of changes) {
        setSlider(entry, value);
        entry.input.dispatchEvent(new Event('input', { bubbles: true }));
      }
      return params(); // what the sliders hold (values outside a slider's range are clamped)
    },
    render,
    async frameTime(n = 30) {
      render();
      finish();
      const begin = performance.now();
      for (let i = 0; i < n; i++) {
        render();
        finish();
      }
      return (performance.now() - begin) / n;
    },
    info() {
      render();
      const vertices = meshes.reduce((sum, mesh) => sum + mesh.geometry.attributes.position.count, 0);
      return {
        triangles: drawn.triangles,
        vertices,
        drawCalls: drawn.calls,
        supersample,
        renderer: rendererName(),
      };
    },
  });

  applyParams();
  render();
  requestAnimationFrame(loop);
  await new Promise((resolve) => requestAnimationFrame(() => resolve())); // the frame is on screen
}

const api = {};
api.ready = start(api).catch((error) => {
  const box = document.getElementById('error');
  if (box && box.hidden) fail(`the viewer failed: ${error && error.message ? error.message : error}`);
  throw error;
});
window.flamenerf = api;
