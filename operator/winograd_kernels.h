/*
 * The inner loops of the Winograd F(4x4, 3x3) convolution (winograd_conv.cc), written once
 * with GCC vector extensions over 8 tiles and included twice: inside a
 * `#pragma GCC target("avx2,fma")` region, where `v8` is one ymm register and vfma() is
 * _mm256_fmadd_ps, and as the portable fallback for CPUs without AVX2/FMA, where the same
 * code compiles to SSE pairs and a separate multiply and add.
 *
 * Before including, the includer defines `vfma(a, b, c)` (a * b + c) and
 * `vgather(base, index)` (base[index[lane]] for every lane).
 *
 * Layouts (TB = tiles per block, a multiple of kPanel):
 *   V[point][c_in][TB]            transformed input tiles
 *   U[point][o_panel][c_in][kRows] transformed weights, output channels in panels of kRows
 *   M[point][c_out_padded][TB]    transformed-domain products
 */

static inline v8 load8(const float* p) {
  v8 r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}

static inline void store8(float* p, v8 x) { std::memcpy(p, &x, sizeof(x)); }

static inline v8 splat(float x) { return v8{x, x, x, x, x, x, x, x}; }

/* r = B^T z for one 6-point line of an input tile (F(4,3) input transform). */
static inline void input_line(const v8 z[6], v8 r[6]) {
  const v8 four = splat(4.f), five = splat(5.f), two = splat(2.f);
  r[0] = four * z[0] - five * z[2] + z[4];
  r[1] = z[3] + z[4] - four * (z[1] + z[2]);
  r[2] = four * (z[1] - z[2]) + z[4] - z[3];
  r[3] = two * (z[3] - z[1]) + z[4] - z[2];
  r[4] = two * (z[1] - z[3]) + z[4] - z[2];
  r[5] = four * z[1] - five * z[3] + z[5];
}

/* y = A^T m for one 6-point line of a product tile (F(4,3) output transform). */
static inline void output_line(const v8 m[6], v8 y[4]) {
  const v8 two = splat(2.f), four = splat(4.f), eight = splat(8.f);
  const v8 sum12 = m[1] + m[2], diff12 = m[1] - m[2];
  const v8 sum34 = m[3] + m[4], diff34 = m[3] - m[4];
  y[0] = m[0] + sum12 + sum34;
  y[1] = diff12 + two * diff34;
  y[2] = sum12 + four * sum34;
  y[3] = diff12 + eight * diff34 + m[5];
}

/* Input transform of 8 tiles whose 6x6 patches lie wholly inside the image plane, read
 * straight from it: lane q's patch starts at plane[offset[q]]. */
static void transform_input_interior(const float* plane, const int offset_array[kLanes],
                                     int width, float* v, long point_stride) {
  v8i offset;
  std::memcpy(&offset, offset_array, sizeof(offset));
  v8 w[6][6];
  for (int row = 0; row < 6; ++row) {
    v8 z[6];
    const v8i row_offset = offset + row * width;
    for (int col = 0; col < 6; ++col) z[col] = vgather(plane, row_offset + col);
    input_line(z, w[row]);
  }
  for (int col = 0; col < 6; ++col) {
    v8 z[6], r[6];
    for (int row = 0; row < 6; ++row) z[row] = w[row][col];
    input_line(z, r);
    for (int row = 0; row < 6; ++row) store8(v + (row * 6 + col) * point_stride, r[row]);
  }
}

/* Transforms the 6x6 input patches d[row*6 + col][lane] of 8 tiles and writes the 36
 * transformed points to V[point][c][lanes] (point stride = cin * tb floats). */
static void transform_input_tiles(const float d[kPoints][kLanes], float* v, long point_stride) {
  v8 w[6][6];
  for (int row = 0; row < 6; ++row) {
    v8 z[6];
    for (int col = 0; col < 6; ++col) z[col] = load8(d[row * 6 + col]);
    input_line(z, w[row]);  // w[row][col'] = (d B)[row][col']
  }
  for (int col = 0; col < 6; ++col) {
    v8 z[6], r[6];
    for (int row = 0; row < 6; ++row) z[row] = w[row][col];
    input_line(z, r);
    for (int row = 0; row < 6; ++row) store8(v + (row * 6 + col) * point_stride, r[row]);
  }
}

/* Inverse-transforms the 36 product points of 8 tiles (M[point][o][lanes], point stride
 * given) into y[r * 4 + c][lane], adding `bias` and clamping at zero when `relu`. */
static void transform_output_tiles(const float* m, long point_stride, float bias, bool relu,
                                   float y[kTile * kTile][kLanes]) {
  v8 s[4][6];
  for (int col = 0; col < 6; ++col) {
    v8 z[6], r[4];
    for (int row = 0; row < 6; ++row) z[row] = load8(m + (row * 6 + col) * point_stride);
    output_line(z, r);
    for (int row = 0; row < 4; ++row) s[row][col] = r[row];
  }
  const v8 b = splat(bias), zero = splat(0.f);
  for (int row = 0; row < 4; ++row) {
    v8 r[4];
    output_line(s[row], r);
    for (int col = 0; col < 4; ++col) {
      v8 out = r[col] + b;
      if (relu) out = out > zero ? out : zero;
      store8(y[row * 4 + col], out);
    }
  }
}

/* Writes one output row of 8 tiles: a[q], b[q], c[q], d[q] go to dst[q][0..3]
 * (a 4x8 -> 8x4 transpose with in-lane shuffles). */
static inline void store_tile_row(v8 a, v8 b, v8 c, v8 d, float* const dst[kLanes]) {
  const v8i lo{0, 8, 1, 9, 4, 12, 5, 13}, hi{2, 10, 3, 11, 6, 14, 7, 15};
  const v8i pair_lo{0, 1, 8, 9, 4, 5, 12, 13}, pair_hi{2, 3, 10, 11, 6, 7, 14, 15};
  const v8 ab_lo = __builtin_shuffle(a, b, lo), ab_hi = __builtin_shuffle(a, b, hi);
  const v8 cd_lo = __builtin_shuffle(c, d, lo), cd_hi = __builtin_shuffle(c, d, hi);
  const v8 t[4] = {__builtin_shuffle(ab_lo, cd_lo, pair_lo), __builtin_shuffle(ab_lo, cd_lo, pair_hi),
                   __builtin_shuffle(ab_hi, cd_hi, pair_lo), __builtin_shuffle(ab_hi, cd_hi, pair_hi)};
  for (int i = 0; i < 4; ++i) {  // t[i] holds lane i in its low half, lane i + 4 in its high
    std::memcpy(dst[i], &t[i], 4 * sizeof(float));
    std::memcpy(dst[i + 4], reinterpret_cast<const float*>(&t[i]) + 4, 4 * sizeof(float));
  }
}

/* Output transform of 8 tiles that lie wholly inside the output plane, written straight
 * to it: lane q's tile starts at plane[offset[q]]. */
static void transform_output_interior(const float* m, long point_stride, float bias, bool relu,
                                      float* plane, const int offset[kLanes], int width) {
  alignas(32) float y[kTile * kTile][kLanes];
  transform_output_tiles(m, point_stride, bias, relu, y);
  for (int row = 0; row < kTile; ++row) {
    float* dst[kLanes];
    for (int q = 0; q < kLanes; ++q) dst[q] = plane + offset[q] + long(row) * width;
    store_tile_row(load8(y[row * 4]), load8(y[row * 4 + 1]), load8(y[row * 4 + 2]),
                   load8(y[row * 4 + 3]), dst);
  }
}

/* M[o0 .. o0+kRows)[t0 .. t0+kPanel) = U panel (cin x kRows) times V (cin x kPanel):
 * a 6x16 register block, 12 accumulators, one pass over the input channels. */
static void gemm_panel(const float* u, const float* v, long ldv, int cin, float* m, long ldm) {
  v8 acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = splat(0.f);
  for (int k = 0; k < cin; ++k) {
    const v8 b0 = load8(v + k * ldv), b1 = load8(v + k * ldv + kLanes);
    for (int r = 0; r < kRows; ++r) {
      const v8 a = splat(u[k * kRows + r]);
      acc[r][0] = vfma(a, b0, acc[r][0]);
      acc[r][1] = vfma(a, b1, acc[r][1]);
    }
  }
  for (int r = 0; r < kRows; ++r) {
    store8(m + r * ldm, acc[r][0]);
    store8(m + r * ldm + kLanes, acc[r][1]);
  }
}
