use super::shown::{self, Feature, Needs, Reg, FEATURES, FIELDS};
use super::*;
use std::collections::BTreeMap;

const ALL_ONES: CpuidResult = CpuidResult { eax: !0, ebx: !0, ecx: !0, edx: !0 };

fn all_ones(_: u32, _: u32) -> CpuidResult {
    ALL_ONES
}

/// A host CPUID captured with `log=debug` (`cpuid LEAF.SUB host EAX EBX
/// ECX EDX`, reduced to `LEAF.SUB EAX EBX ECX EDX`); absent leaves are 0.
struct Dump(BTreeMap<(u32, u32), CpuidResult>);

impl Dump {
    fn parse(text: &str) -> Dump {
        let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
        let mut map = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let w: Vec<&str> = line.split_whitespace().collect();
            let (leaf, sub) = w[0].split_once('.').unwrap();
            let r = CpuidResult { eax: hex(w[1]), ebx: hex(w[2]), ecx: hex(w[3]), edx: hex(w[4]) };
            map.insert((hex(leaf), hex(sub)), r);
        }
        Dump(map)
    }

    fn cpuid(&self, leaf: u32, sub: u32) -> CpuidResult {
        self.0.get(&(leaf, sub)).copied().unwrap_or_default()
    }

    /// What `arch::xsave::init` would enable on this CPU.
    fn switched_xcr0(&self) -> u64 {
        if self.cpuid(1, 0).ecx & shown::XSAVE.mask() == 0 {
            return 0;
        }
        let d = self.cpuid(0xD, 0);
        let supported = u64::from(d.eax) | (u64::from(d.edx) << 32);
        xsave::switched_components(supported, |i| {
            let r = self.cpuid(0xD, i);
            Component { size: r.eax, offset: r.ebx }
        })
    }

    fn model(&self) -> CpuModel {
        CpuModel::new(&|l, s| self.cpuid(l, s), self.switched_xcr0(), 1)
    }
}

fn view(xcr0: u64, osxsave: bool) -> GuestView {
    GuestView { index: 0, cr4: if osxsave { cr4::OSXSAVE } else { 0 }, xcr0 }
}

/// The declared mask of (leaf, sub, register): features and fields.
fn declared(leaf: u32, sub: u32, reg: Reg) -> u32 {
    let features = FEATURES.iter().filter(|f| f.leaf == leaf && f.sub == sub && f.reg == reg).map(|f| f.mask());
    let fields = FIELDS.iter().filter(|f| f.leaf == leaf && sub == 0 && f.reg == reg).map(|f| f.mask);
    features.chain(fields).fold(0, |a, b| a | b)
}

#[test]
fn all_ones_host_shows_exactly_the_declared_set() {
    let m = CpuModel::new(&all_ones, xsave::SWITCHABLE, 1);
    let g = view(xsave::SWITCHABLE, true);
    // Registers computed rather than masked, with what they must hold.
    let computed = |leaf: u32, sub: u32, reg: Reg| -> Option<u32> {
        match (leaf, sub, reg) {
            (0, 0, Reg::Eax) => Some(shown::MAX_BASIC),
            (EXT_BASE, 0, Reg::Eax) => Some(shown::MAX_EXTENDED),
            (1, 0, Reg::Ebx) => Some(0x0001_FF00), // CLFLUSH size kept, one logical CPU, APIC ID 0
            (7, 0, Reg::Eax) => Some(0),
            (0xD, 0, Reg::Eax) => Some(xsave::SWITCHABLE as u32),
            (0xD, 0, Reg::Edx) => Some(0),
            (0xD, 0, Reg::Ebx | Reg::Ecx) => Some(u32::MAX), // nonsense host sizes saturate
            (0xD, 2 | 5 | 6 | 7, Reg::Eax | Reg::Ebx) => Some(u32::MAX),
            (0xD, 2 | 5 | 6 | 7, Reg::Ecx) => Some(0b10),
            (0xD, 2 | 5 | 6 | 7, Reg::Edx) => Some(0),
            _ => None,
        }
    };
    let mut leaves: Vec<u32> = (0..=0x20).chain(EXT_BASE..=EXT_BASE + 0x20).collect();
    leaves.extend([HV_BASE + 2, 0xC000_0000, 0x2000_0000]);
    for leaf in leaves {
        for sub in 0..8 {
            let r = m.answer(leaf, sub, &g);
            // Leaves without sub-leaves give the same answer for any ECX.
            let key = if has_subleaves(leaf) { sub } else { 0 };
            for reg in [Reg::Eax, Reg::Ebx, Reg::Ecx, Reg::Edx] {
                let want = computed(leaf, key, reg).unwrap_or_else(|| declared(leaf, key, reg));
                let seen = r.reg(reg);
                assert_eq!(seen, want, "leaf {leaf:#x}.{sub} {reg:?}: expected {want:#010x}, saw {seen:#010x}");
            }
        }
    }
}

#[test]
fn the_declared_leaves_fit_the_model() {
    let mut keys: Vec<(u32, u32)> = FEATURES.iter().map(|f| (f.leaf, f.sub)).collect();
    keys.extend(FIELDS.iter().map(|f| (f.leaf, 0)));
    keys.extend([(0xD, 0), (0xD, 2), (0xD, 5), (0xD, 6), (0xD, 7)]);
    keys.sort();
    keys.dedup();
    assert!(keys.len() <= MAX_ENTRIES, "{} leaves declared, the model holds {MAX_ENTRIES}", keys.len());
    for f in FEATURES {
        let other = FEATURES.iter().filter(|g| (g.leaf, g.sub, g.reg, g.bit) == (f.leaf, f.sub, f.reg, f.bit));
        assert_eq!(other.count(), 1, "{} is declared twice", f.name);
        let field = declared(f.leaf, f.sub, f.reg)
            & FIELDS.iter().filter(|x| x.leaf == f.leaf && x.reg == f.reg).map(|x| x.mask).fold(0, |a, b| a | b);
        assert_eq!(field & f.mask(), 0, "{} overlaps a field", f.name);
    }
}

#[test]
fn a_host_without_features_shows_only_the_hypervisor_and_the_emulated_apic() {
    let bare = |leaf, _| match leaf {
        0 => CpuidResult { eax: 0xD, ..Default::default() },
        EXT_BASE => CpuidResult { eax: 0x8000_0008, ..Default::default() },
        _ => CpuidResult::default(),
    };
    let m = CpuModel::new(&bare, 0, 1);
    let r = m.answer(1, 0, &view(0, true));
    let ecx = shown::HYPERVISOR.mask() | shown::TSC_DEADLINE.mask();
    assert_eq!(r, CpuidResult { ebx: 1 << 16, ecx, edx: shown::APIC.mask(), ..Default::default() });
    assert_eq!(m.answer(0, 0, &view(0, false)).eax, 7);
    let apic = CpuidResult { edx: shown::APIC.mask(), ..Default::default() };
    assert_eq!(m.answer(0x8000_0001, 0, &view(0, false)), apic);
    let nothing = CpuModel::new(&|_, _| CpuidResult::default(), 0, 1);
    assert_eq!(nothing.answer(1, 0, &view(0, false)), CpuidResult::default(), "beyond the host's highest leaf");
}

#[test]
fn avx_and_avx512_follow_the_switched_components() {
    let avx2 = FEATURES.iter().find(|f| f.name == "avx2").copied().unwrap();
    let avx512f = FEATURES.iter().find(|f| f.name == "avx512f").copied().unwrap();
    let only_sse = CpuModel::new(&all_ones, xcr0::X87 | xcr0::SSE, 1);
    assert!(only_sse.shows(shown::XSAVE) && !only_sse.shows(avx2) && !only_sse.shows(avx512f));
    assert_eq!(only_sse.answer(0xD, 0, &view(3, true)).eax, 3);
    let avx = CpuModel::new(&all_ones, xcr0::X87 | xcr0::SSE | xcr0::AVX, 1);
    assert!(avx.shows(avx2) && !avx.shows(avx512f));
    let none = CpuModel::new(&all_ones, 0, 1);
    assert!(!none.shows(shown::XSAVE) && !none.shows(avx2) && !none.shows(shown::OSXSAVE));
    assert_eq!(none.answer(0, 0, &view(0, false)).eax, shown::MAX_BASIC_WITHOUT_XSAVE);
    assert_eq!(none.answer(0xD, 0, &view(0, false)), CpuidResult::default());
    assert_eq!(none.xcr0_supported(), 0);
    // A host XCR0 that is not a valid one is not used at all.
    assert_eq!(CpuModel::new(&all_ones, xcr0::X87 | xcr0::AVX, 1).xcr0_supported(), 0);
}

#[test]
fn osxsave_and_the_area_size_follow_the_guests_cr4_and_xcr0() {
    let m = Dump::parse(include_str!("dumps/qemu-epyc-rome.txt")).model();
    let r = m.answer(1, 0, &view(1, false));
    assert_eq!(r.ecx & shown::OSXSAVE.mask(), 0, "CR4.OSXSAVE clear");
    let r = m.answer(1, 0, &view(1, true));
    assert_ne!(r.ecx & shown::OSXSAVE.mask(), 0, "CR4.OSXSAVE set");
    assert_eq!(m.answer(0xD, 0, &view(1, true)).ebx, 576, "x87 only: legacy region and header");
    assert_eq!(m.answer(0xD, 0, &view(7, true)).ebx, 832, "with AVX");
    assert_eq!(m.answer(0xD, 0, &view(7, true)).ecx, 832, "everything supported");
}

#[test]
fn apic_id_is_the_vcpu_index_and_hypervisor_leaves_answer() {
    let m = CpuModel::new(&all_ones, 0, 7);
    let g = GuestView { index: 3, ..Default::default() };
    assert_eq!(m.answer(1, 0, &g).ebx >> 24, 3);
    let r = m.answer(HV_BASE, 0, &g);
    assert_eq!(r.eax, MAX_HV_LEAF);
    let sig: Vec<u8> = [r.ebx, r.ecx, r.edx].iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(&sig, b"CertiVisorHV");
    assert_eq!(m.answer(MAX_HV_LEAF, 0, &g).eax, 7);
}

/// What every model must hold whatever the host: the guest is told it is
/// virtualised and is never shown what the hypervisor does not virtualise.
fn check_sane(name: &str, d: &Dump, m: &CpuModel) {
    let g = view(m.xcr0_supported(), true);
    let a = |leaf, sub| m.answer(leaf, sub, &g);
    let vendor: Vec<u8> = [a(0, 0).ebx, a(0, 0).edx, a(0, 0).ecx].iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(&vendor, b"AuthenticAMD", "{name}: vendor");
    assert_eq!(a(1, 0).eax, d.cpuid(1, 0).eax, "{name}: family/model/stepping pass through");
    assert_ne!(a(1, 0).ecx & (1 << 31), 0, "{name}: hypervisor bit");
    for (what, leaf, reg, bit) in [
        ("MONITOR", 1, Reg::Ecx, 3),
        ("VMX", 1, Reg::Ecx, 5),
        ("PCID", 1, Reg::Ecx, 17),
        ("x2APIC", 1, Reg::Ecx, 21),
        ("MCE", 1, Reg::Edx, 7),
        ("MTRR", 1, Reg::Edx, 12),
        ("MCA", 1, Reg::Edx, 14),
        ("HTT", 1, Reg::Edx, 28),
        ("PKU", 7, Reg::Ecx, 3),
        ("LA57", 7, Reg::Ecx, 16),
        ("SVM", 0x8000_0001, Reg::Ecx, 2),
        ("ExtApicSpace", 0x8000_0001, Reg::Ecx, 3),
        ("OSVW", 0x8000_0001, Reg::Ecx, 9),
        ("perfctr_core", 0x8000_0001, Reg::Ecx, 23),
        ("MONITORX", 0x8000_0001, Reg::Ecx, 29),
    ] {
        assert_eq!(a(leaf, 0).reg(reg) & (1 << bit), 0, "{name}: {what} must be hidden");
    }
    for leaf in [1, 0x8000_0001] {
        assert_ne!(
            a(leaf, 0).edx & (1 << 9),
            0,
            "{name}: APIC in leaf {leaf:#x} must be shown (the VMM emulates an xAPIC)"
        );
    }
    assert_eq!(a(0x8000_000A, 0), CpuidResult::default(), "{name}: the SVM leaf is hidden");
    assert_eq!(a(4, 0), CpuidResult::default(), "{name}: leaf 4 is hidden");
    assert!(a(0, 0).eax <= d.cpuid(0, 0).eax && a(0x8000_0000, 0).eax <= d.cpuid(0x8000_0000, 0).eax);
    // Every bit shown is one the host has (OSXSAVE, the hypervisor bit and
    // what the VMM emulates aside), in every declared leaf.
    let computed = |f: &Feature| *f == shown::OSXSAVE || *f == shown::HYPERVISOR || f.needs == Needs::Vmm;
    for f in FEATURES.iter().filter(|f| m.shows(**f) && !computed(f)) {
        assert_ne!(d.cpuid(f.leaf, f.sub).reg(f.reg) & f.mask(), 0, "{name}: {} shown but the host lacks it", f.name);
    }
    // Leaf 0xD agrees with what the guest may put in XCR0.
    let x = m.xcr0_supported();
    assert_eq!(u64::from(a(0xD, 0).eax) | (u64::from(a(0xD, 0).edx) << 32), x, "{name}: leaf 0xD.0");
    assert_eq!(m.shows(shown::XSAVE), x != 0, "{name}: XSAVE shown iff extended state is switched");
    let avx = FEATURES.iter().find(|f| f.name == "avx").copied().unwrap();
    assert_eq!(m.shows(avx), x & xcr0::AVX != 0, "{name}: AVX shown iff XCR0 may enable it");
    for i in 2..64 {
        let sub = a(0xD, i);
        if x & (1 << i) != 0 {
            assert_eq!((sub.eax, sub.ebx), (d.cpuid(0xD, i).eax, d.cpuid(0xD, i).ebx), "{name}: 0xD.{i}");
            assert!(sub.eax + sub.ebx <= a(0xD, 0).ecx, "{name}: component {i} within the area");
        } else {
            assert_eq!(sub, CpuidResult::default(), "{name}: 0xD.{i} is not a guest component");
        }
    }
    assert!(a(0xD, 0).ecx as usize <= xsave::AREA_CAPACITY, "{name}: the area fits the vCPU's");
}

#[test]
fn qemu64_shows_no_xsave_and_no_avx() {
    let d = Dump::parse(include_str!("dumps/qemu64.txt"));
    let m = d.model();
    check_sane("qemu64", &d, &m);
    assert_eq!(m.xcr0_supported(), 0);
    assert_eq!(m.answer(0, 0, &view(0, false)).eax, 7, "leaves up to 7 without XSAVE");
}

#[test]
fn qemu_epyc_rome_shows_avx2_and_xsave_with_ymm() {
    let d = Dump::parse(include_str!("dumps/qemu-epyc-rome.txt"));
    let m = d.model();
    check_sane("EPYC-Rome", &d, &m);
    assert_eq!(m.xcr0_supported(), 0x7);
    let avx2 = FEATURES.iter().find(|f| f.name == "avx2").copied().unwrap();
    assert!(m.shows(avx2) && m.shows(shown::RDTSCP) && m.shows(shown::SMEP) && m.shows(shown::UMIP));
    assert_eq!(m.answer(0x8000_0000, 0, &view(0, false)).eax, 0x8000_0008);
    assert_eq!(m.answer(0xD, 1, &view(7, true)).eax, 0b101, "XSAVEOPT and XGETBV1, not XSAVEC/XSAVES");
}

#[test]
fn qemu_max_shows_avx2() {
    let d = Dump::parse(include_str!("dumps/qemu-max.txt"));
    let m = d.model();
    check_sane("max", &d, &m);
    let avx2 = FEATURES.iter().find(|f| f.name == "avx2").copied().unwrap();
    assert!(m.shows(avx2));
}

#[test]
fn bochs_ryzen_shows_avx2_but_hides_monitorx_xsavec_and_xsaves() {
    let d = Dump::parse(include_str!("dumps/bochs-ryzen.txt"));
    let m = d.model();
    check_sane("Bochs ryzen", &d, &m);
    let avx2 = FEATURES.iter().find(|f| f.name == "avx2").copied().unwrap();
    assert!(m.shows(avx2));
    assert_ne!(d.cpuid(0x8000_0001, 0).ecx & (1 << 29), 0, "the host has MONITORX");
    assert_eq!(d.cpuid(0xD, 1).eax & 0b1010, 0b1010, "the host has XSAVEC and XSAVES");
    assert_eq!(m.answer(0xD, 1, &view(7, true)).eax, 0b101, "only XSAVEOPT and XGETBV1 are shown");
}

#[test]
fn bochs_phenom_has_no_xsave_so_the_guest_gets_none() {
    let d = Dump::parse(include_str!("dumps/bochs-phenom.txt"));
    let m = d.model();
    check_sane("Bochs phenom", &d, &m);
    assert_eq!(m.xcr0_supported(), 0);
    assert!(!m.shows(shown::RDPID));
}

#[test]
fn answers_that_do_not_depend_on_state_are_the_same_for_every_vcpu_cr4_and_xcr0() {
    // The world switch repeats such answers without asking the model again
    // (arch::svm::InPlace): a leaf missing from `depends_on_state` would be
    // answered stale.
    let models = [
        ("all ones", CpuModel::new(&all_ones, xcr0::X87 | xcr0::SSE | xcr0::AVX, 1)),
        ("bochs ryzen", Dump::parse(include_str!("dumps/bochs-ryzen.txt")).model()),
        ("qemu max", Dump::parse(include_str!("dumps/qemu-max.txt")).model()),
    ];
    let views = [
        GuestView { index: 0, cr4: 0, xcr0: xcr0::X87 },
        GuestView { index: 3, cr4: !0, xcr0: !0 },
        GuestView { index: 1, cr4: cr4::OSXSAVE, xcr0: xcr0::X87 | xcr0::SSE | xcr0::AVX },
    ];
    for (name, m) in &models {
        for leaf in (0..0x20).chain(0x4000_0000..0x4000_0004).chain(0x8000_0000..0x8000_0020) {
            for sub in 0..4 {
                let answers: Vec<CpuidResult> = views.iter().map(|v| m.answer(leaf, sub, v)).collect();
                let same = answers.windows(2).all(|w| w[0] == w[1]);
                assert!(
                    same || CpuModel::depends_on_state(leaf, sub),
                    "{name}: CPUID {leaf:#x}.{sub} differs between vCPU states but is not marked: {answers:?}"
                );
            }
        }
    }
}
