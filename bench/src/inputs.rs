//! Deterministic input memory for the programs (the same bytes for every engine and run).

use tessera_host_tests::program_gen::{Rng, Source};

/// `len` pseudo-random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..len).map(|_| rng.byte()).collect()
}

/// `len` zero bytes (the sieve's table).
pub fn zeros(len: usize) -> Vec<u8> {
    vec![0; len]
}

/// A capture for the header parser: `count` records of a 2-byte little-endian length and
/// the packet bytes. Mostly valid Ethernet/IPv4/TCP packets (some VLAN-tagged, with the
/// options a real capture shows: MSS, window scale, SACK-permitted, SACK blocks,
/// timestamps), plus UDP, ARP, IPv6, bad checksums and truncated packets.
pub fn capture(seed: u64, count: usize) -> Vec<u8> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = Vec::new();
    for _ in 0..count {
        let packet = packet(&mut rng);
        out.extend_from_slice(&(packet.len() as u16).to_le_bytes());
        out.extend_from_slice(&packet);
    }
    out
}

fn word(rng: &mut Rng) -> u32 {
    u32::from_le_bytes([rng.byte(), rng.byte(), rng.byte(), rng.byte()])
}

fn packet(rng: &mut Rng) -> Vec<u8> {
    let kind = rng.below(100);
    let mut p = Vec::with_capacity(128);
    p.extend_from_slice(&[0x00, 0x26, 0x62, 0x2f, 0x47, 0x87, 0x00, 0x1d, 0x60, 0xb3, 0x01, 0x84]);
    if kind < 10 {
        p.extend_from_slice(&[0x81, 0x00, 0x00, (rng.below(4000) + 1) as u8]);
    }
    let ethertype: u16 = match kind {
        80..=84 => 0x0806,
        85..=89 => 0x86dd,
        _ => 0x0800,
    };
    p.extend_from_slice(&ethertype.to_be_bytes());
    if ethertype != 0x0800 {
        p.extend((0..28 + rng.below(40)).map(|_| rng.byte()));
        return p;
    }
    let udp = (70..80).contains(&kind);
    let l3 = p.len();
    // IPv4 header, sometimes with options (IHL > 5).
    let ip_options = if rng.below(8) == 0 { 4 * (1 + rng.below(3) as usize) } else { 0 };
    let ihl = 20 + ip_options;
    let l4 = transport(rng, udp);
    let total = (ihl + l4.len()) as u16;
    p.push(0x40 | (ihl / 4) as u8);
    p.push(0);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&(rng.below(65536) as u16).to_be_bytes());
    p.extend_from_slice(&[0x40, 0x00, 64, if udp { 17 } else { 6 }, 0, 0]);
    p.extend_from_slice(&[10, 0, rng.below(4) as u8, rng.byte()]);
    p.extend_from_slice(&[192, 168, 1, rng.byte()]);
    p.extend(std::iter::repeat_n(1u8, ip_options));
    let checksum = !ones_complement_sum(&p[l3..l3 + ihl]);
    let checksum = if (90..95).contains(&kind) { checksum ^ 0x0100 } else { checksum };
    p[l3 + 10..l3 + 12].copy_from_slice(&checksum.to_be_bytes());
    p.extend_from_slice(&l4);
    if kind >= 95 {
        let cut = 10 + rng.below(p.len() as u32 - 10) as usize;
        p.truncate(cut);
    }
    p
}

/// A UDP datagram or a TCP segment with options and payload.
fn transport(rng: &mut Rng, udp: bool) -> Vec<u8> {
    let payload = rng.below(160) as usize;
    let mut s = Vec::with_capacity(60 + payload);
    s.extend_from_slice(&(1024 + rng.below(60000) as u16).to_be_bytes());
    s.extend_from_slice(&[[0, 80], [1, 187], [0, 22], [0x1f, 0x90]][rng.below(4) as usize]);
    if udp {
        s.extend_from_slice(&((8 + payload) as u16).to_be_bytes());
        s.extend_from_slice(&[0, 0]);
    } else {
        s.extend_from_slice(&word(rng).to_be_bytes());
        s.extend_from_slice(&word(rng).to_be_bytes());
        let options = tcp_options(rng);
        s.push((((20 + options.len()) / 4) << 4) as u8);
        s.push([0x02, 0x12, 0x10, 0x18, 0x11][rng.below(5) as usize]);
        s.extend_from_slice(&(rng.below(65536) as u16).to_be_bytes());
        s.extend_from_slice(&[0, 0, 0, 0]);
        s.extend_from_slice(&options);
    }
    s.extend((0..payload).map(|_| rng.byte()));
    s
}

/// TCP options padded to a multiple of 4 bytes.
fn tcp_options(rng: &mut Rng) -> Vec<u8> {
    let mut o = Vec::new();
    match rng.below(4) {
        // SYN: MSS, SACK-permitted, timestamps, NOP, window scale.
        0 => {
            o.extend_from_slice(&[2, 4, 0x05, 0xb4, 4, 2, 8, 10]);
            o.extend_from_slice(&word(rng).to_be_bytes());
            o.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, 7]);
        }
        // Data: NOP, NOP, timestamps.
        1 => {
            o.extend_from_slice(&[1, 1, 8, 10]);
            o.extend_from_slice(&word(rng).to_be_bytes());
            o.extend_from_slice(&word(rng).to_be_bytes());
        }
        // ACK with SACK blocks.
        2 => {
            let blocks = 1 + rng.below(3) as usize;
            o.extend_from_slice(&[1, 1, 5, (2 + 8 * blocks) as u8]);
            for _ in 0..blocks {
                let left = word(rng);
                o.extend_from_slice(&left.to_be_bytes());
                o.extend_from_slice(&left.wrapping_add(rng.below(20000)).to_be_bytes());
            }
        }
        _ => {}
    }
    while o.len() % 4 != 0 {
        o.push(0);
    }
    o
}

fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes.chunks(2).map(|c| u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0))).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
