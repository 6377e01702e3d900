/*
 * The inner loops of the Winograd F(4x4, 3x3) convolution (winograd_conv.cc), written once
 * with GCC vector extensions over 8 tiles and included twice: inside a
 * `#pragma GCC target("avx2,fma")` region, where `v8` is one ymm register, vfma() is
 * _mm256_fmadd_ps and vgather() _mm256_i32gather_ps, and as the portable fallback for CPUs
 * without AVX2/FMA, where the same code compiles to SSE pairs and scalar loads.
 *
 * Before including, the includer defines `vfma(a, b, c)` (a * b + c) and
 * `vgather(base, index)` (base[index[lane]] for every lane) for `v8` / `v8i`.
 *
 * Layouts (TB = tiles per block, a multiple of kPanel; P = kPoints = 36):
 *   V[tile_panel][P][c_in][kPanel]   transformed input tiles, one GEMM operand contiguous
 *   U[P][o_panel][c_in][kRows]       transformed weights (zero rows pad the last panel)
 *   M[c_out_padded][P][TB]           products: one output channel's 36 points together
 */

static inline v8 load8(const float* p) {
  v8 r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}

static inline void store8(float* p, v8 x) { std::memcpy(p, &x, sizeof(x)); }

static inline v8 splat(float x) { return v8{x, x, x, x, x, x, x, x}; }

static inline v8i load8i(const int* p) {
  v8i r;
  std::memcpy(&r, p, sizeof(r));
  return r;
}

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

/* Input transform of 8 tiles of one channel plane (height x width), read straight from it:
 * lane q's 6x6 patch has its top-left pixel at (iy[q], ix[q]) = plane[offset[q]]; pixels
 * outside the plane (the padding, or a lane with iy far out of range: no tile) read as zero.
 * Writes the 36 transformed points to v[point * point_stride]. */
static void transform_input(const float* plane, const int offset_array[kLanes],
                            const int iy_array[kLanes], const int ix_array[kLanes], int height,
                            int width, float* v, long point_stride) {
  const v8i offset = load8i(offset_array), iy = load8i(iy_array), ix = load8i(ix_array);
  const v8i zero_index = v8i{} + 0;
  v8i col_ok[6];
  for (int col = 0; col < 6; ++col) col_ok[col] = (ix + col >= 0) & (ix + col < width);
  v8 w[6][6];
  for (int row = 0; row < 6; ++row) {
    const v8i row_ok = (iy + row >= 0) & (iy + row < height);
    const v8i row_offset = offset + row * width;
    v8 z[6];
    for (int col = 0; col < 6; ++col) {
      const v8i ok = row_ok & col_ok[col];
      // Out-of-plane lanes gather index 0 (always readable) and are then zeroed.
      const v8 pixel = vgather(plane, ok ? row_offset + col : zero_index);
      z[col] = v8(v8i(pixel) & ok);
    }
    input_line(z, w[row]);  // w[row][j] = (d B)[row][j]
  }
  for (int col = 0; col < 6; ++col) {
    v8 z[6], r[6];
    for (int row = 0; row < 6; ++row) z[row] = w[row][col];
    input_line(z, r);  // r[i] = (B^T d B)[i][col]
    for (int row = 0; row < 6; ++row) store8(v + (row * 6 + col) * point_stride, r[row]);
  }
}

/* Transposes one output row of 8 tiles: a[q], b[q], c[q], d[q] go to rows[q][0..3]. */
static inline void transpose_tile_row(v8 a, v8 b, v8 c, v8 d, float rows[kLanes][kTile]) {
  const v8i lo{0, 8, 1, 9, 4, 12, 5, 13}, hi{2, 10, 3, 11, 6, 14, 7, 15};
  const v8i pair_lo{0, 1, 8, 9, 4, 5, 12, 13}, pair_hi{2, 3, 10, 11, 6, 7, 14, 15};
  const v8 ab_lo = __builtin_shuffle(a, b, lo), ab_hi = __builtin_shuffle(a, b, hi);
  const v8 cd_lo = __builtin_shuffle(c, d, lo), cd_hi = __builtin_shuffle(c, d, hi);
  const v8 t[4] = {
      __builtin_shuffle(ab_lo, cd_lo, pair_lo), __builtin_shuffle(ab_lo, cd_lo, pair_hi),
      __builtin_shuffle(ab_hi, cd_hi, pair_lo), __builtin_shuffle(ab_hi, cd_hi, pair_hi)};
  for (int i = 0; i < 4; ++i) {  // t[i] holds lane i in its low half, lane i + 4 in its high
    std::memcpy(rows[i], &t[i], kTile * sizeof(float));
    std::memcpy(rows[i + 4], reinterpret_cast<const float*>(&t[i]) + 4, kTile * sizeof(float));
  }
}

/* Output transform of 8 tiles from their 36 product points m[point * point_stride], plus
 * `bias`, clamped at zero when `relu`; tile[q][r][c] is lane q's output pixel (r, c). */
static void transform_output(const float* m, long point_stride, float bias, bool relu,
                             float tile[kLanes][kTile][kTile]) {
  v8 s[4][6];
  for (int col = 0; col < 6; ++col) {
    v8 z[6], r[4];
    for (int row = 0; row < 6; ++row) z[row] = load8(m + (row * 6 + col) * point_stride);
    output_line(z, r);  // r[i] = (A^T m)[i][col]
    for (int row = 0; row < 4; ++row) s[row][col] = r[row];
  }
  const v8 b = splat(bias), zero = splat(0.f);
  for (int row = 0; row < 4; ++row) {
    v8 r[4];
    output_line(s[row], r);  // r[j] = (A^T m A)[row][j]
    for (int col = 0; col < 4; ++col) {
      r[col] += b;
      if (relu) r[col] = r[col] > zero ? r[col] : zero;
    }
    float rows[kLanes][kTile];
    transpose_tile_row(r[0], r[1], r[2], r[3], rows);
    for (int q = 0; q < kLanes; ++q) std::memcpy(tile[q][row], rows[q], sizeof(rows[q]));
  }
}

/* kRows output channels x kPanel tiles of one point: m[r * ldm + t] = sum over k of
 * u[k * kRows + r] * v[k * kPanel + t] — a 6x16 register block, 12 accumulators. */
static void gemm_panel(const float* u, const float* v, int cin, float* m, long ldm) {
  v8 acc[kRows][2];
  for (int r = 0; r < kRows; ++r) acc[r][0] = acc[r][1] = splat(0.f);
  for (int k = 0; k < cin; ++k) {
    const v8 b0 = load8(v + k * kPanel), b1 = load8(v + k * kPanel + kLanes);
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

/* All output-channel panels of one point times `tile_panels` consecutive tile panels (each
 * panel_stride floats after the last): a V panel (c_in x kPanel) stays in L1 while the
 * point's transformed weights stream past it. */
static void gemm_point(const float* u_point, int panels, const float* v, long panel_stride,
                       int tile_panels, int cin, float* m, long ldm) {
  for (int t = 0; t < tile_panels; ++t) {
    for (int panel = 0; panel < panels; ++panel) {
      gemm_panel(u_point + long(panel) * cin * kRows, v + t * panel_stride, cin,
                 m + panel * kRows * ldm + t * kPanel, ldm);
    }
  }
}
