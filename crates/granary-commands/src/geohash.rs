//! Redis's geohash (geohash.c, geohash_helper.c): the 52-bit interleaved
//! cell a GEOADD score encodes, the nine cells a radius or box search
//! scans, and the distance formula. Every step follows Redis's arithmetic
//! so searches examine the same members and report the same distances.

pub const LON_MIN: f64 = -180.0;
pub const LON_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// 26 bits per coordinate: the 52-bit scores GEOADD stores.
pub const STEP_MAX: u8 = 26;
const EARTH_RADIUS_M: f64 = 6372797.560856;
const MERCATOR_MAX: f64 = 20037726.37;
const D_R: f64 = std::f64::consts::PI / 180.0;

fn deg_rad(a: f64) -> f64 {
    a * D_R
}

fn rad_deg(a: f64) -> f64 {
    a / D_R
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

impl Hash {
    /// Redis's HASHISZERO: a cell excluded from a search.
    fn is_zero(&self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The score range [min, max) of the 52-bit cells inside this cell.
    pub fn score_range(&self) -> (u64, u64) {
        let shift = 52 - u32::from(self.step) * 2;
        (self.bits << shift, (self.bits + 1) << shift)
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Area {
    pub lon: Range,
    pub lat: Range,
}

pub const WGS84_LON: Range = Range {
    min: LON_MIN,
    max: LON_MAX,
};
pub const WGS84_LAT: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};

/// Spreads the 32 bits of `v` over the even bits of a u64.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bits of `v` (the inverse of `spread`).
fn squash(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((x | (x >> 16)) & 0x0000_0000_FFFF_FFFF) as u32
}

/// The cell of (lon, lat) at `step` bits per coordinate within the given
/// ranges; None outside Redis's indexable area (as geohashEncode fails).
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step == 0 || step > 32 {
        return None;
    }
    if !(LON_MIN..=LON_MAX).contains(&lon) || !(LAT_MIN..=LAT_MAX).contains(&lat) {
        return None;
    }
    if lat < lat_r.min || lat > lat_r.max || lon < lon_r.min || lon > lon_r.max {
        return None;
    }
    let cells = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * cells;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * cells;
    // C converts the offsets to uint32_t (truncation); an offset of exactly
    // 2^step (the range's maximum) spills one bit above the hash, as in Redis.
    let bits = spread(lat_off as u32) | (spread(lon_off as u32) << 1);
    Some(Hash { bits, step })
}

/// The area a cell covers.
pub fn decode(lon_r: Range, lat_r: Range, h: Hash) -> Area {
    let lat_i = squash(h.bits);
    let lon_i = squash(h.bits >> 1);
    let cells = (1u64 << h.step) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    Area {
        lat: Range {
            min: lat_r.min + (f64::from(lat_i) / cells) * lat_scale,
            max: lat_r.min + (f64::from(lat_i.wrapping_add(1)) / cells) * lat_scale,
        },
        lon: Range {
            min: lon_r.min + (f64::from(lon_i) / cells) * lon_scale,
            max: lon_r.min + (f64::from(lon_i.wrapping_add(1)) / cells) * lon_scale,
        },
    }
}

/// A cell's centre, clamped to the indexable area.
fn area_center(a: &Area) -> [f64; 2] {
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LON_MIN, LON_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    [lon, lat]
}

/// C's `(uint64_t)double` on x86-64 (cvttsd2si based), which Redis applies
/// to any zset score it decodes, GEOADD's or not.
fn c_double_to_u64(d: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    // cvttsd2si: out of the i64 range it yields the "indefinite" 1 << 63.
    let cvt = |v: f64| {
        if (-TWO63..TWO63).contains(&v) {
            v as i64 as u64
        } else {
            1 << 63
        }
    };
    if d < TWO63 {
        cvt(d)
    } else {
        cvt(d - TWO63) ^ (1 << 63)
    }
}

/// The (longitude, latitude) a sorted-set score stands for.
pub fn decode_score(score: f64) -> [f64; 2] {
    let h = Hash {
        bits: c_double_to_u64(score),
        step: STEP_MAX,
    };
    area_center(&decode(WGS84_LON, WGS84_LAT, h))
}

/// The GEOADD score of a valid (lon, lat).
pub fn encode_score(lon: f64, lat: f64) -> Option<u64> {
    encode(WGS84_LON, WGS84_LAT, lon, lat, STEP_MAX).map(|h| h.score_range().0)
}

/// The standard 11-character geohash (latitude range -90..90) GEOHASH replies.
pub fn geohash_string(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let [lon, lat] = decode_score(score);
    let std_lat = Range {
        min: -90.0,
        max: 90.0,
    };
    let bits = encode(WGS84_LON, std_lat, lon, lat, STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

/// Great-circle distance in meters (haversine, Redis 7.2+ form).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let (lat1r, lon1r, lat2r, lon2r) = (deg_rad(lat1), deg_rad(lon1), deg_rad(lat2), deg_rad(lon2));
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// A search area: a circle of `radius` or a `width` x `height` box, in
/// units of `conversion` meters, around `center` (lon, lat).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub center: [f64; 2],
    pub conversion: f64,
    pub kind: ShapeKind,
}

#[derive(Clone, Copy, Debug)]
pub enum ShapeKind {
    Radius(f64),
    Box { width: f64, height: f64 },
}

impl Shape {
    /// The distance (meters) from the centre to (lon, lat) if that point
    /// lies inside the shape.
    pub fn contains(&self, lon: f64, lat: f64) -> Option<f64> {
        let [x1, y1] = self.center;
        match self.kind {
            ShapeKind::Radius(r) => {
                let d = distance(x1, y1, lon, lat);
                (d <= r * self.conversion).then_some(d)
            }
            ShapeKind::Box { width, height } => {
                // Latitude first: it is the cheaper test (as in Redis).
                if lat_distance(lat, y1) > height * self.conversion / 2.0 {
                    return None;
                }
                if distance(lon, lat, x1, lat) > width * self.conversion / 2.0 {
                    return None;
                }
                Some(distance(x1, y1, lon, lat))
            }
        }
    }

    /// [min lon, min lat, max lon, max lat] of the shape (geohashBoundingBox).
    fn bounds(&self) -> [f64; 4] {
        let [lon, lat] = self.center;
        let (half_w, half_h) = match self.kind {
            ShapeKind::Radius(r) => (r, r),
            ShapeKind::Box { width, height } => (width / 2.0, height / 2.0),
        };
        let height = self.conversion * half_h;
        let width = self.conversion * half_w;
        let lat_delta = rad_deg(height / EARTH_RADIUS_M);
        let lon_delta_top = rad_deg(width / EARTH_RADIUS_M / deg_rad(lat + lat_delta).cos());
        let lon_delta_bottom = rad_deg(width / EARTH_RADIUS_M / deg_rad(lat - lat_delta).cos());
        // The wider edge is the one nearer the equator.
        let lon_delta = if lat < 0.0 {
            lon_delta_bottom
        } else {
            lon_delta_top
        };
        [
            lon - lon_delta,
            lat - lat_delta,
            lon + lon_delta,
            lat + lat_delta,
        ]
    }

    /// The radius (meters) whose step estimate Redis uses: the circle's, or
    /// the box's half diagonal.
    fn radius_m(&self) -> f64 {
        let r = match self.kind {
            ShapeKind::Radius(r) => r,
            ShapeKind::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        };
        r * self.conversion
    }
}

fn estimate_steps(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut range = range_m;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// Moves a cell one column east (d > 0) or west.
fn move_x(h: Hash, d: i8) -> Hash {
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let shift = 64 - u32::from(h.step) * 2;
    let zz = 0x5555_5555_5555_5555u64 >> shift;
    let x = if d > 0 {
        x.wrapping_add(zz + 1)
    } else {
        (x | zz).wrapping_sub(zz + 1)
    };
    let x = x & (0xaaaa_aaaa_aaaa_aaaa >> shift);
    Hash {
        bits: x | y,
        step: h.step,
    }
}

/// Moves a cell one row north (d > 0) or south.
fn move_y(h: Hash, d: i8) -> Hash {
    let x = h.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = h.bits & 0x5555_5555_5555_5555;
    let shift = 64 - u32::from(h.step) * 2;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    let y = if d > 0 {
        y.wrapping_add(zz + 1)
    } else {
        (y | zz).wrapping_sub(zz + 1)
    };
    let y = y & (0x5555_5555_5555_5555 >> shift);
    Hash {
        bits: x | y,
        step: h.step,
    }
}

/// The nine cells to scan, in Redis's order: centre, N, S, E, W, NE, NW,
/// SE, SW. Excluded cells are zero.
fn neighbours(h: Hash) -> [Hash; 9] {
    [
        h,
        move_y(h, 1),
        move_y(h, -1),
        move_x(h, 1),
        move_x(h, -1),
        move_y(move_x(h, 1), 1),
        move_y(move_x(h, -1), 1),
        move_y(move_x(h, 1), -1),
        move_y(move_x(h, -1), -1),
    ]
}

/// The cells (geohashCalculateAreasByShapeWGS84) whose members a search
/// examines, in scan order; cells Redis excludes or skips as repeats are
/// left out.
pub fn search_cells(shape: &Shape) -> Vec<Hash> {
    let [min_lon, min_lat, max_lon, max_lat] = shape.bounds();
    let [lon, lat] = shape.center;
    let mut steps = estimate_steps(shape.radius_m(), lat);
    let cell = |steps| encode(WGS84_LON, WGS84_LAT, lon, lat, steps).unwrap_or_default();
    let mut hash = cell(steps);
    let mut n = neighbours(hash);
    let dec = |h| decode(WGS84_LON, WGS84_LAT, h);
    let too_coarse = dec(n[1]).lat.max < max_lat
        || dec(n[2]).lat.min > min_lat
        || dec(n[3]).lon.max < max_lon
        || dec(n[4]).lon.min > min_lon;
    if steps > 1 && too_coarse {
        steps -= 1;
        hash = cell(steps);
        n = neighbours(hash);
    }
    let area = dec(hash);
    if steps >= 2 {
        let zero = Hash::default();
        if area.lat.min < min_lat {
            for i in [2, 7, 8] {
                n[i] = zero;
            }
        }
        if area.lat.max > max_lat {
            for i in [1, 5, 6] {
                n[i] = zero;
            }
        }
        if area.lon.min < min_lon {
            for i in [4, 8, 6] {
                n[i] = zero;
            }
        }
        if area.lon.max > max_lon {
            for i in [3, 7, 5] {
                n[i] = zero;
            }
        }
    }
    // membersOfAllNeighbors skips a cell equal to the last one scanned,
    // except that its "last" starts at index 0 as "none".
    let mut out = Vec::with_capacity(9);
    let mut last = 0usize;
    for (i, h) in n.iter().enumerate() {
        if h.is_zero() || (last != 0 && *h == n[last]) {
            continue;
        }
        out.push(*h);
        last = i;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_redis() {
        // GEOADD Sicily 13.361389 38.115556 "Palermo" -> score 3479099956230698.
        assert_eq!(encode_score(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(&geohash_string(3479099956230698.0), b"sqc8b49rny0");
        let [lon, lat] = decode_score(3479099956230698.0);
        assert!((lon - 13.361389).abs() < 1e-5 && (lat - 38.115556).abs() < 1e-5);
    }

    #[test]
    fn decodes_any_score_as_x86_64_c_does() {
        // Past 2^64 the conversion yields 1 << 63, which the unsigned
        // fix-up turns back into 0.
        assert_eq!(decode_score(1e20), decode_score(0.0));
        assert_eq!(c_double_to_u64(-1.0), u64::MAX);
        assert_eq!(c_double_to_u64(9.3e18), 9_300_000_000_000_000_000);
    }

    #[test]
    fn spread_round_trips() {
        for v in [0u32, 1, 0xdead_beef, u32::MAX] {
            assert_eq!(squash(spread(v)), v);
        }
    }
}
