//! The C programs with committed eBPF objects (`examples/*.c`, `host-tests/c/*.c`) run end
//! to end and agree with the same C compiled natively for the machine running the tests
//! (`tessera-native-examples`: `cc -O2`, or the cross gcc under qemu-user).
//!
//! Every program of every object (the default CPU and each `-mcpu=v1..v4` build) runs
//! through the interpreter and the JIT on a scenario: a sequence of runs over realistic
//! inputs sharing the object's maps (so state carries from run to run), with a
//! deterministic host (clock, randomness, trace sink). After every run r0 (the bytes of the
//! program's return type) and the context bytes must equal the native run's; at the end,
//! every declared map (definition, and each present element with its slot), every global
//! variable (by its section and offset in the object's data maps), the trace messages and
//! the host's clock and random state must equal the native ones.

use tessera::ebpf::elf::{MapOrigin, Object, Select};
use tessera::ebpf::helpers::standard::STANDARD;
use tessera::ebpf::maps::{Map, MapDef, MapKey};
use tessera::ebpf::memory::Host;
use tessera::ebpf::{FastProgram, Helpers, JitProgram, Memory, Mode, RunError, Vm};
use tessera_native_examples::{HostConfig, NativeGlobal, NativeProgram, PROGRAM_FILES, ProgramFile, Session};

/// Nine frames: the entry and eight nested local calls.
const STACK_LEN: usize = tessera::ebpf::STACK_SIZE;

// --- the deterministic host --------------------------------------------------------------

/// The tessera side of [`HostConfig`] (`examples/native/bpf_native.c` is the native one).
struct TestHost {
    now: u64,
    step: u64,
    random: u32,
    trace: Vec<Vec<u8>>,
}

impl TestHost {
    fn new(config: HostConfig) -> TestHost {
        TestHost { now: config.clock_start, step: config.clock_step, random: config.seed, trace: Vec::new() }
    }
}

impl Host for TestHost {
    fn ktime_ns(&mut self) -> u64 {
        let now = self.now;
        self.now = self.now.wrapping_add(self.step);
        now
    }

    fn trace(&mut self, message: &[u8]) {
        self.trace.push(message.to_vec());
    }

    fn random_u32(&mut self) -> u32 {
        let mut x = self.random;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.random = x;
        x
    }
}

/// Inputs: a small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// --- scenarios ---------------------------------------------------------------------------

struct Step {
    program: &'static str,
    input: Vec<u8>,
}

fn step(program: &'static str, input: Vec<u8>) -> Step {
    Step { program, input }
}

struct Scenario {
    host: HostConfig,
    steps: Vec<Step>,
    /// Written for the file (not [`any_program`]'s inputs): each program must give more
    /// than one result over its runs.
    varied: bool,
}

const HOST: HostConfig = HostConfig { clock_start: 1_000_000_000, clock_step: 40_000_000, seed: 0x1234_5678 };

fn le32s(keys: &[u32]) -> Vec<u8> {
    keys.iter().flat_map(|k| k.to_le_bytes()).collect()
}

/// An Ethernet frame carrying IPv4 (`ihl` words of header, options zeroed) and UDP to
/// `dst_port`, with a right header checksum.
fn udp_frame(dst_port: u16, payload: usize, ihl: u8) -> Vec<u8> {
    let ip_len = ihl as usize * 4;
    let total = ip_len + 8 + payload;
    let mut f = vec![0u8; 14 + total];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..];
    ip[0] = 0x40 | ihl;
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&0x1c46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[192, 168, 1, 10]);
    ip[16..20].copy_from_slice(&[10, 0, 0, 53]);
    let udp = &mut ip[ip_len..];
    udp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&dst_port.to_be_bytes());
    udp[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
    for (i, b) in udp[8..].iter_mut().enumerate() {
        *b = i as u8;
    }
    fix_ip_checksum(&mut f);
    f
}

fn fix_ip_checksum(frame: &mut [u8]) {
    let Some(&first) = frame.get(14) else { return };
    let ip_len = (first & 0xf) as usize * 4;
    if frame.len() < 14 + ip_len || ip_len < 20 {
        return;
    }
    frame[24..26].fill(0);
    let mut sum: u32 = frame[14..14 + ip_len].chunks(2).map(|w| u16::from_be_bytes([w[0], w[1]]) as u32).sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    frame[24..26].copy_from_slice(&(!sum as u16).to_be_bytes());
}

fn packet_filter() -> Scenario {
    let mut frames = Vec::new();
    for port in [53, 123, 514, 9999, 80, 0, 52, 54, 65535, 8080] {
        frames.push(udp_frame(port, 16, 5));
    }
    frames.push(udp_frame(53, 0, 5));
    frames.push(udp_frame(123, 32, 6)); // with an options word
    frames.push(udp_frame(123, 32, 15));
    let edit = |mut f: Vec<u8>, at: usize, value: u8, fix: bool| {
        f[at] = value;
        if fix {
            fix_ip_checksum(&mut f);
        }
        f
    };
    let ok = udp_frame(53, 20, 5);
    frames.extend([
        edit(ok.clone(), 24, ok[24] ^ 1, false), // bad checksum
        edit(ok.clone(), 20, 0x20, true),        // more fragments
        edit(ok.clone(), 21, 0x08, true),        // fragment offset
        edit(ok.clone(), 20, 0x40, true),        // don't fragment: still whole
        edit(ok.clone(), 23, 6, true),           // TCP
        edit(ok.clone(), 12, 0x86, false),       // not IPv4
        edit(ok.clone(), 14, 0x65, true),        // version 6
        edit(ok.clone(), 14, 0x44, true),        // ihl 4
        edit(ok.clone(), 17, 0xff, true),        // total length past the frame
        edit(ok.clone(), 39, 4, false),          // UDP length below 8
        edit(ok.clone(), 38, 1, false),          // UDP length past the datagram
        ok[..33].to_vec(),                       // shorter than Ethernet + IPv4
        ok[..41].to_vec(),                       // no room for UDP
        [ok.clone(), vec![0xee; 18]].concat(),   // Ethernet padding after the datagram
        Vec::new(),
    ]);
    // Mutations of good frames: a few bytes changed, the checksum fixed or not, cut short.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..400 {
        let port = [53u16, 123, 514, 9999, 7][rng.below(5) as usize];
        let mut f = udp_frame(port, rng.below(40) as usize, 5 + rng.below(3) as u8);
        for _ in 0..rng.below(3) {
            let at = 12 + rng.below(f.len() as u64 - 12) as usize;
            f[at] = rng.next() as u8;
        }
        if i % 2 == 0 {
            fix_ip_checksum(&mut f);
        }
        if i % 7 == 0 {
            f.truncate(rng.below(f.len() as u64 + 1) as usize);
        }
        frames.push(f);
    }
    Scenario { host: HOST, steps: frames.into_iter().map(|f| step("udp_filter", f)).collect(), varied: true }
}

fn counter() -> Scenario {
    let (count, query) = ("count_keys", "query");
    let mut steps = vec![
        step(count, le32s(&[1, 2, 3, 1, 2, 1])),
        step(query, le32s(&[1])),
        // More keys than the 64 entries: the rest go to `overflow`.
        step(count, le32s(&(0..80).collect::<Vec<_>>())),
        step(query, le32s(&[1, 0])), // and delete it
        step(query, le32s(&[1])),
        step(query, le32s(&[2, 7])),
        // The freed slot is taken again.
        step(count, le32s(&[1000, 1001, 3])),
        step(query, le32s(&[1000, 0])),
        step(query, le32s(&[3, 0])),
        step(count, le32s(&[3000, 3001, 3002])),
        step(query, Vec::new()),
        step(count, vec![9, 0, 0, 0, 1, 2]), // a trailing partial key
    ];
    let mut rng = Rng(7);
    for _ in 0..20 {
        let keys: Vec<u32> = (0..rng.below(12)).map(|_| rng.below(90) as u32).collect();
        steps.push(step(count, le32s(&keys)));
        steps.push(step(query, le32s(&[rng.below(90) as u32, rng.below(2) as u32])));
    }
    Scenario { host: HOST, steps, varied: true }
}

fn counter_legacy() -> Scenario {
    let mut steps = vec![
        step("count_legacy", le32s(&[5, 6, 7, 5])),
        // 32 entries: the update of every further key fails (-E2BIG) and is skipped.
        step("count_legacy", le32s(&(0..40).collect::<Vec<_>>())),
        step("count_legacy", le32s(&[39, 38, 5, 1])),
    ];
    let mut rng = Rng(11);
    for _ in 0..10 {
        let keys: Vec<u32> = (0..rng.below(10)).map(|_| rng.below(50) as u32).collect();
        steps.push(step("count_legacy", le32s(&keys)));
    }
    Scenario { host: HOST, steps, varied: true }
}

fn rate_limit() -> Scenario {
    let mut rng = Rng(3);
    let mut steps = Vec::new();
    for i in 0..240 {
        let client = rng.below(24) as u32;
        let cost = rng.below(12) as u32;
        let mut request = le32s(&[client, cost]);
        if i % 17 == 0 {
            request.truncate(4 + i % 4); // too short
        }
        steps.push(step("rate_limit", request));
    }
    // 40 ms between clock readings: 0.4 tokens per request at 10 per second.
    Scenario { host: HOST, steps, varied: true }
}

fn globals() -> Scenario {
    let mut rng = Rng(5);
    let inputs = [Vec::new(), b"a".to_vec(), b"hello, world".to_vec(), rng.bytes(100), rng.bytes(1000), rng.bytes(7)];
    Scenario { host: HOST, steps: inputs.into_iter().map(|i| step("hash_input", i)).collect(), varied: true }
}

/// A flow record of `host-tests/c/flow_table.c`.
fn flow(saddr: u32, daddr: u32, sport: u16, dport: u16, proto: u8, flags: u8, len: u16) -> Vec<u8> {
    let mut r = Vec::with_capacity(16);
    r.extend(saddr.to_le_bytes());
    r.extend(daddr.to_le_bytes());
    r.extend(sport.to_le_bytes());
    r.extend(dport.to_le_bytes());
    r.extend([proto, flags]);
    r.extend(len.to_le_bytes());
    r
}

fn flow_table() -> Scenario {
    let (track, query) = ("track_flows", "flow_packets");
    let a = flow(1, 2, 1000, 80, 6, 0, 60);
    let b = flow(1, 2, 1001, 80, 6, 0x02, 1500);
    let c = flow(3, 4, 5353, 53, 17, 0, 80);
    let mut steps = vec![
        step(track, [a.clone(), b.clone(), a.clone(), c.clone()].concat()),
        step(query, a.clone()),
        step(query, flow(9, 9, 9, 9, 6, 0, 0)),
        // a ends (FIN): deleted, then an update with BPF_EXIST fails with -ENOENT.
        step(track, [flow(1, 2, 1000, 80, 6, 0x01, 40), b.clone()].concat()),
        step(query, a.clone()),
    ];
    // More flows than the 16 entries: inserts fail with -E2BIG until some close.
    let many: Vec<u8> = (0..24).flat_map(|i| flow(10 + i, 20, 2000 + i as u16, 443, 6, 0, 100 + i as u16)).collect();
    steps.push(step(track, many));
    steps.push(step(track, (0..6).flat_map(|i| flow(10 + i, 20, 2000 + i as u16, 443, 6, 0x04, 40)).collect()));
    steps.push(step(track, (30..40).flat_map(|i| flow(i, 21, 7, 7, 1, 0, 64)).collect()));
    let mut rng = Rng(13);
    for _ in 0..12 {
        let records: Vec<u8> = (0..rng.below(20))
            .flat_map(|_| {
                let proto = [6u8, 17, 1, 47][rng.below(4) as usize];
                let flags = [0u8, 0, 0, 0x01, 0x04, 0x10][rng.below(6) as usize];
                flow(rng.below(6) as u32, 2, rng.below(4) as u16, 80, proto, flags, rng.below(1500) as u16)
            })
            .collect();
        steps.push(step(track, records));
        steps.push(step(query, flow(rng.below(6) as u32, 2, rng.below(4) as u16, 80, 6, 0, 0)));
    }
    steps.push(step(track, vec![1, 2, 3])); // no whole record
    Scenario { host: HostConfig { clock_start: 5_000, clock_step: 1_250, seed: 1 }, steps, varied: true }
}

fn histogram() -> Scenario {
    let mut rng = Rng(17);
    let mut steps = vec![step("report", Vec::new())];
    for run in 0..10 {
        let samples: Vec<u8> = (0..rng.below(60))
            .flat_map(|_| {
                let source = rng.below(1 << 20) as u32;
                // Tags: letters, and bytes above 0x7f (the trace must keep them as they are).
                let tag = if run % 3 == 2 { 0x80 + rng.below(0x80) as u32 } else { b'a' as u32 + rng.below(26) as u32 };
                let latency = (rng.next() >> rng.below(64)) as u32;
                le32s(&[source | tag << 24, latency])
            })
            .collect();
        steps.push(step("record", samples));
        if run % 4 == 3 {
            steps.push(step("report", Vec::new()));
        }
    }
    steps.push(step("report", Vec::new()));
    Scenario { host: HostConfig { clock_start: 0, clock_step: 0, seed: 0xdead_beef }, steps, varied: true }
}

/// A command of `host-tests/c/kv_commands.c`.
fn command(op: u32, flags: u32, key: u64, value: u64) -> Vec<u8> {
    [op.to_le_bytes(), flags.to_le_bytes()]
        .concat()
        .into_iter()
        .chain(key.to_le_bytes())
        .chain(value.to_le_bytes())
        .collect()
}

fn kv_commands() -> Scenario {
    const ANY: u32 = 0;
    const NOEXIST: u32 = 1;
    const EXIST: u32 = 2;
    let run = |commands: &[(u32, u32, u64, u64)]| {
        step("run_commands", commands.iter().flat_map(|&(op, f, k, v)| command(op, f, k, v)).collect())
    };
    let mut steps = vec![
        run(&[
            (0, ANY, 1, 100),
            (0, NOEXIST, 1, 5), // -EEXIST
            (0, EXIST, 2, 5),   // -ENOENT
            (0, EXIST, 1, 101),
            (0, 3, 1, 0), // -EINVAL: unknown flags
            (0, 0xffff_ffff, 1, 0),
            (2, ANY, 1, 9),
            (2, ANY, 3, 30),
            (3, ANY, 1, 0),
            (3, ANY, 4, 0), // absent
            (1, ANY, 3, 0),
            (1, ANY, 3, 0), // -ENOENT
            (4, ANY, 0, 7),
            (4, EXIST, 3, 8),
            (4, NOEXIST, 1, 9), // -EEXIST: every array element exists
            (4, ANY, 4, 9),     // -E2BIG: index out of range
            (4, 3, 1, 9),       // -EINVAL
            (5, ANY, 1, 0),     // -EINVAL: arrays have no delete
            (6, ANY, u64::from_le_bytes(*b"tessera!"), 0),
            (6, ANY, u64::from_le_bytes(*b"ab\0cdefg"), 0),
            (6, ANY, u64::from_le_bytes([0xc3, 0xa9, b't', 0xe9, 0xff, 0x80, b'!', 0x7f]), 0),
            (9, ANY, 0, 0), // unknown op
        ]),
        // Ten keys into eight entries: -E2BIG for the last two; deletes free slots that
        // later inserts take again (most recently freed first).
        run(&(10..20).map(|k| (0, NOEXIST, k, k * 3)).collect::<Vec<_>>()),
        run(&[(1, ANY, 12, 0), (1, ANY, 15, 0), (0, ANY, 30, 1), (0, ANY, 31, 2), (0, ANY, 32, 3), (3, ANY, 31, 0)]),
    ];
    let mut rng = Rng(19);
    for _ in 0..15 {
        let commands: Vec<(u32, u32, u64, u64)> = (0..rng.below(40))
            .map(|_| (rng.below(7) as u32, rng.below(4) as u32, rng.below(24), rng.next() >> 8))
            .collect();
        steps.push(run(&commands));
    }
    Scenario { host: HOST, steps, varied: true }
}

/// A scenario for a program file no scenario was written for: every program on inputs of
/// several sizes, twice over, so that state carries between runs.
fn any_program(file: &ProgramFile) -> Scenario {
    let object = Object::parse(file.objects[0].1).unwrap_or_else(|e| panic!("{}: {e}", file.source));
    let programs: Vec<&'static str> = object.programs().map(|p| p.name).collect();
    let mut rng = Rng(23);
    let mut steps = Vec::new();
    for _ in 0..2 {
        for len in [0, 1, 4, 8, 16, 24, 64, 256] {
            for &program in &programs {
                steps.push(step(program, rng.bytes(len)));
            }
        }
    }
    Scenario { host: HOST, steps, varied: false }
}

fn scenario(file: &ProgramFile) -> Scenario {
    match file.name {
        "packet_filter" => packet_filter(),
        "counter" => counter(),
        "counter_legacy" => counter_legacy(),
        "rate_limit" => rate_limit(),
        "globals" => globals(),
        "flow_table" => flow_table(),
        "histogram" => histogram(),
        "kv_commands" => kv_commands(),
        _ => any_program(file),
    }
}

// --- running on both sides ---------------------------------------------------------------

/// A map's definition and present elements: `(slot, key, value)`, `key` `None` for arrays.
#[derive(Clone, Debug, PartialEq, Eq)]
struct MapState {
    name: String,
    def: (u32, u32, u32, u32),
    entries: Vec<(u32, Option<Vec<u8>>, Vec<u8>)>,
}

/// What a scenario produced, on either side.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Outcome {
    /// Per run: r0 (the bytes of the program's return type) and the context afterwards.
    runs: Vec<(u64, Vec<u8>)>,
    /// The declared maps (legacy and BTF), by name.
    maps: Vec<MapState>,
    /// Every global variable: `(name, bytes)`, in the native table's order.
    globals: Vec<(String, Vec<u8>)>,
    trace: Vec<Vec<u8>>,
    /// The clock's next reading and the random state.
    host: (u64, u32),
}

/// A scenario's native run.
struct NativeRun {
    outcome: Outcome,
    /// Where the eBPF object has each global.
    layout: Vec<NativeGlobal>,
    /// The programs, with their return sizes.
    programs: Vec<NativeProgram>,
}

fn run_native(file: &ProgramFile, scenario: &Scenario) -> Result<NativeRun, String> {
    let mut session = Session::start(file.name, scenario.host)?;
    let programs = session.programs();
    let mut runs = Vec::new();
    for step in &scenario.steps {
        let mut context = step.input.clone();
        let r0 = session.run(step.program, &mut context)?;
        runs.push((r0, context));
    }
    let mut maps: Vec<MapState> = session
        .maps()
        .into_iter()
        .map(|m| MapState {
            name: m.name,
            def: (m.map_type, m.key_size, m.value_size, m.max_entries),
            entries: m.entries,
        })
        .collect();
    maps.sort_by(|a, b| a.name.cmp(&b.name));
    let layout = session.globals();
    let globals = layout.iter().map(|g| (g.name.clone(), g.bytes.clone())).collect();
    let outcome = Outcome { runs, maps, globals, trace: session.trace(), host: session.host_state() };
    Ok(NativeRun { outcome, layout, programs })
}

/// One program of an object: compiled in JIT mode, interpreted otherwise.
struct Loaded<'p> {
    name: &'static str,
    vm: Vm<'p, 'static>,
    /// The program compiled or decoded once, for the runs of a JIT or fast-interpreter
    /// build.
    prepared: Prepared<'p>,
}

enum Prepared<'p> {
    Nothing,
    Decoded(FastProgram<'p, 'static, 'static>),
    Compiled(JitProgram<'p, 'static, 'static>),
}

impl Loaded<'_> {
    fn run(&self, memory: &mut Memory) -> Result<u64, RunError> {
        match &self.prepared {
            Prepared::Compiled(jit) => jit.run(memory),
            Prepared::Decoded(fast) => fast.run(memory),
            Prepared::Nothing => self.vm.interpret(memory),
        }
    }
}

/// The tessera side: `object` (one CPU build of the file) in `mode`, with `host`; `native`
/// tells where the globals are and how wide each program's result is.
fn run_tessera(
    object_bytes: &'static [u8],
    scenario: &Scenario,
    mode: Mode,
    host: HostConfig,
    native: &NativeRun,
) -> Result<Outcome, String> {
    let object = Object::parse(object_bytes).map_err(|e| e.to_string())?;
    let defs: Vec<MapDef> = object.maps().map(|m| m.def).collect();
    let mut maps: Vec<Map<'static>> = object.maps().map(|m| m.create().expect("the object's maps")).collect();
    let codes: Vec<(&'static str, Vec<u8>)> = object
        .programs()
        .map(|p| object.load(Select::Function(p.name)).map(|l| (p.name, l.code)))
        .collect::<Result<_, _>>()
        .map_err(|e| object.explain(e).to_string())?;
    let mut programs = Vec::new();
    for (name, code) in &codes {
        let vm = Vm::with_maps(code, &defs, Helpers::new(&STANDARD)).map_err(|e| format!("{name}: {e}"))?;
        let prepared = match mode {
            Mode::Jit => Prepared::Compiled(vm.compile().map_err(|e| format!("{name}: {e}"))?),
            Mode::FastInterpreter => Prepared::Decoded(vm.prepare_fast()),
            Mode::Interpreter => Prepared::Nothing,
        };
        programs.push(Loaded { name, vm, prepared });
    }
    let mut host = TestHost::new(host);
    let mut stack = vec![0u8; STACK_LEN];
    let mut runs = Vec::new();
    for (i, step) in scenario.steps.iter().enumerate() {
        let loaded = programs.iter().find(|p| p.name == step.program).ok_or(format!("no program {}", step.program))?;
        let native_program = native.programs.iter().find(|p| p.name == step.program).ok_or("no native program")?;
        let mut context = step.input.clone();
        let mut memory = Memory::new(&mut stack, &mut context, &mut []).with_maps(&mut maps).with_host(&mut host);
        let r0 = loaded.run(&mut memory).map_err(|e| format!("run {i} ({}): {e}", step.program))?;
        runs.push((native_program.result(r0), context));
    }

    let mut declared = Vec::new();
    for (index, m) in object.maps().enumerate() {
        if !matches!(m.origin, MapOrigin::Btf | MapOrigin::Legacy) {
            continue;
        }
        let map = &maps[index];
        let entries = map
            .entries()
            .map(|(key, value)| match key {
                MapKey::Index(slot) => (slot, None, value.to_vec()),
                MapKey::Bytes(key) => (map.lookup(key).expect("a present key"), Some(key.to_vec()), value.to_vec()),
            })
            .collect();
        let d = m.def;
        declared.push(MapState {
            name: d.name().to_string(),
            def: (d.map_type().raw(), d.key_size(), d.value_size(), d.max_entries()),
            entries,
        });
    }
    declared.sort_by(|a, b| a.name.cmp(&b.name));

    let mut globals = Vec::new();
    for g in &native.layout {
        let index = object
            .maps()
            .position(|m| m.def.name().as_str() == g.section)
            .ok_or(format!("`{}` is in {}, which is no map of the object", g.name, g.section))?;
        let at = g.offset as usize;
        let bytes = maps[index]
            .values()
            .get(at..at + g.bytes.len())
            .ok_or(format!("`{}` lies outside {}", g.name, g.section))?;
        globals.push((g.name.clone(), bytes.to_vec()));
    }
    Ok(Outcome { runs, maps: declared, globals, trace: host.trace, host: (host.now, host.random) })
}

/// The first difference between the tessera and native outcomes, described.
fn compare(steps: &[Step], tessera: &Outcome, native: &Outcome) -> Result<(), String> {
    for (i, ((t, n), step)) in tessera.runs.iter().zip(&native.runs).zip(steps).enumerate() {
        if t.0 != n.0 {
            return Err(format!("run {i} ({}): r0 = {:#x}, native {:#x}", step.program, t.0, n.0));
        }
        if t.1 != n.1 {
            return Err(format!("run {i} ({}): context {:02x?}, native {:02x?}", step.program, t.1, n.1));
        }
    }
    if tessera.runs.len() != native.runs.len() {
        return Err(format!("{} runs, native {}", tessera.runs.len(), native.runs.len()));
    }
    let names = |o: &Outcome| o.maps.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
    if names(tessera) != names(native) {
        return Err(format!("maps {:?}, native {:?}", names(tessera), names(native)));
    }
    for (t, n) in tessera.maps.iter().zip(&native.maps) {
        if t.def != n.def {
            return Err(format!("map {}: (type, key, value, entries) {:?}, native {:?}", t.name, t.def, n.def));
        }
        if t.entries != n.entries {
            let first = t
                .entries
                .iter()
                .zip(&n.entries)
                .position(|(a, b)| a != b)
                .unwrap_or(t.entries.len().min(n.entries.len()));
            return Err(format!(
                "map {}: {} elements, native {}; first difference at element {first}: {:02x?}, native {:02x?}",
                t.name,
                t.entries.len(),
                n.entries.len(),
                t.entries.get(first),
                n.entries.get(first)
            ));
        }
    }
    for (t, n) in tessera.globals.iter().zip(&native.globals) {
        if t != n {
            return Err(format!("global {}: {:02x?}, native {:02x?}", t.0, t.1, n.1));
        }
    }
    if tessera.trace != native.trace {
        let first = tessera.trace.iter().zip(&native.trace).position(|(a, b)| a != b);
        let show = |m: Option<&Vec<u8>>| m.map(|m| String::from_utf8_lossy(m).into_owned());
        let at = first.unwrap_or(tessera.trace.len().min(native.trace.len()));
        return Err(format!(
            "trace: {} messages, native {}; message {at}: {:?} ({:02x?}), native {:?} ({:02x?})",
            tessera.trace.len(),
            native.trace.len(),
            show(tessera.trace.get(at)),
            tessera.trace.get(at),
            show(native.trace.get(at)),
            native.trace.get(at)
        ));
    }
    if tessera.host != native.host {
        return Err(format!("host (clock, random) {:?}, native {:?}", tessera.host, native.host));
    }
    Ok(())
}

/// Runs one CPU build of `file` in `mode` with `host` and compares with the native run.
fn compare_build(
    bytes: &'static [u8],
    scenario: &Scenario,
    mode: Mode,
    host: HostConfig,
    native: &NativeRun,
) -> Result<(), String> {
    let outcome = run_tessera(bytes, scenario, mode, host, native)?;
    compare(&scenario.steps, &outcome, &native.outcome)
}

/// Runs `file`'s scenario natively, then every CPU build in both modes, and compares.
/// Returns how many (build, mode) pairs matched.
fn check_file(file: &ProgramFile) -> usize {
    let scenario = scenario(file);
    let native = run_native(file, &scenario).unwrap_or_else(|e| panic!("{}: native: {e}", file.source));
    // Every program of the file runs, on inputs that do not all give the same result, and
    // the native build has the same programs.
    let object = Object::parse(file.objects[0].1).unwrap();
    let mut programs: Vec<&str> = object.programs().map(|p| p.name).collect();
    let mut native_programs: Vec<&str> = native.programs.iter().map(|p| p.name).collect();
    programs.sort();
    native_programs.sort();
    assert_eq!(programs, native_programs, "{}: programs", file.source);
    for p in &programs {
        let results: Vec<u64> = scenario
            .steps
            .iter()
            .zip(&native.outcome.runs)
            .filter(|(s, _)| s.program == *p)
            .map(|(_, r)| r.0)
            .collect();
        assert!(!results.is_empty(), "{}: the scenario never runs {p}", file.source);
        assert!(
            !scenario.varied || results.len() < 4 || results.iter().any(|&r| r != results[0]),
            "{}: {p} always returns {:#x}",
            file.source,
            results[0]
        );
    }
    let mut failures = Vec::new();
    let mut matched = 0;
    for (cpu, bytes) in file.objects {
        for mode in [Mode::Interpreter, Mode::FastInterpreter, Mode::Jit] {
            match compare_build(bytes, &scenario, mode, scenario.host, &native) {
                Ok(()) => matched += 1,
                Err(e) => failures.push(format!("{} ({cpu}, {mode:?}): {e}", file.source)),
            }
        }
    }
    assert!(failures.is_empty(), "tessera and native C disagree:\n{}", failures.join("\n"));
    println!(
        "examples ({}): {}: {} runs of {} programs match native C in {matched} builds and modes",
        std::env::consts::ARCH,
        file.source,
        scenario.steps.len(),
        programs.len()
    );
    matched
}

/// The comparison is not blind: a host that differs from the native one (a clock that
/// runs faster, other random numbers) or maps that differ are reported.
#[test]
fn the_comparison_sees_differences() {
    let rate_limit = file("rate_limit");
    let scenario = self::rate_limit();
    let native = run_native(rate_limit, &scenario).unwrap();
    let bytes = rate_limit.objects[0].1;
    assert_eq!(compare_build(bytes, &scenario, Mode::Interpreter, scenario.host, &native), Ok(()));
    let fast_clock = HostConfig { clock_step: scenario.host.clock_step * 2, ..scenario.host };
    let error = compare_build(bytes, &scenario, Mode::Jit, fast_clock, &native).unwrap_err();
    assert!(error.starts_with("run "), "{error}");

    let histogram = file("histogram");
    let scenario = self::histogram();
    let native = run_native(histogram, &scenario).unwrap();
    let other_seed = HostConfig { seed: scenario.host.seed + 1, ..scenario.host };
    let error = compare_build(histogram.objects[0].1, &scenario, Mode::Interpreter, other_seed, &native).unwrap_err();
    assert!(error.starts_with("run 1 (record): r0 = "), "{error}");

    // One element's value changed after the runs.
    let counter = file("counter");
    let scenario = self::counter();
    let native = run_native(counter, &scenario).unwrap();
    let mut outcome = run_tessera(counter.objects[0].1, &scenario, Mode::Jit, scenario.host, &native).unwrap();
    assert_eq!(compare(&scenario.steps, &outcome, &native.outcome), Ok(()));
    let counts = outcome.maps.iter_mut().find(|m| m.name == "counts").unwrap();
    counts.entries[5].2[0] ^= 1;
    let error = compare(&scenario.steps, &outcome, &native.outcome).unwrap_err();
    assert!(error.starts_with("map counts: 64 elements, native 64; first difference at element 5"), "{error}");
}

fn file(name: &str) -> &'static ProgramFile {
    PROGRAM_FILES.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no program file {name}"))
}

macro_rules! matches_native {
    ($($name:ident),* $(,)?) => {
        mod matches_native {
            use super::*;

            /// Five builds (the default CPU and `-mcpu=v1` … `v4`) in three modes.
            const BUILDS_AND_MODES: usize = 5 * 3;
        $(
            #[test]
            fn $name() {
                assert_eq!(check_file(file(stringify!($name))), BUILDS_AND_MODES);
            }
        )*
        /// A program file no test above names (one added to `host-tests/c/` with its objects)
        /// is compared too, on [`any_program`]'s inputs.
        #[test]
        fn every_other_program_file() {
            let named = [$(stringify!($name)),*];
            for file in PROGRAM_FILES.iter().filter(|f| !named.contains(&f.name)) {
                assert_eq!(check_file(file), BUILDS_AND_MODES);
            }
        }
        }
    };
}

matches_native!(packet_filter, counter, counter_legacy, rate_limit, globals, flow_table, histogram, kv_commands);
