//! Just enough ELF reading for `cargo xtask size`: the file header, program
//! headers, section sizes by name and the dynamic table, and which file
//! bytes the executable segments map. 32- and 64-bit, little- and
//! big-endian (x86_64, aarch64, armv7, mips, mipsel).

pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;

pub const PT_LOAD: u32 = 1;
pub const PT_DYNAMIC: u32 = 2;
pub const PT_INTERP: u32 = 3;
pub const PT_GNU_STACK: u32 = 0x6474_e551;
pub const PT_GNU_RELRO: u32 = 0x6474_e552;

pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;

pub const SHT_NOBITS: u32 = 8;
pub const SHF_ALLOC: u64 = 0x2;
pub const SHF_EXECINSTR: u64 = 0x4;

/// The page size the executable-page check assumes: the kernel maps a
/// segment's whole pages, so every file byte in them is mapped with the
/// segment's permissions. 4 KiB is the page of every target's usual
/// kernels (a 64 KiB-page aarch64 kernel maps more).
pub const PAGE: u64 = 4096;

/// The start of `foreign_exec_bytes`' phrases (what a target file's
/// `hardening_exceptions` names to accept them).
pub const NON_CODE_MAPPED: &str = "non-code file bytes mapped executable";

/// x86 linkers fill the gaps between code with int3 (0xcc), a trap.
const X86_TRAP: u8 = 0xcc;

pub const DT_NULL: i64 = 0;
pub const DT_NEEDED: i64 = 1;
pub const DT_STRTAB: i64 = 5;
pub const DT_BIND_NOW: i64 = 24;
pub const DT_FLAGS: i64 = 30;
pub const DT_FLAGS_1: i64 = 0x6fff_fffb;
pub const DF_BIND_NOW: u64 = 0x8;
pub const DF_1_NOW: u64 = 0x1;

#[derive(Clone, Debug)]
pub struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
}

#[derive(Clone, Debug)]
pub struct Shdr {
    pub name: String,
    pub sh_type: u32,
    pub flags: u64,
    pub offset: u64,
    pub size: u64,
}

impl Shdr {
    /// The file bytes it occupies (none for SHT_NOBITS).
    fn file_range(&self) -> std::ops::Range<u64> {
        let size = if self.sh_type == SHT_NOBITS { 0 } else { self.size };
        self.offset..self.offset.saturating_add(size)
    }
}

#[derive(Debug)]
pub struct Elf {
    pub is64: bool,
    pub big_endian: bool,
    pub e_type: u16,
    pub machine: u16,
    pub phdrs: Vec<Phdr>,
    /// Empty when the file has no section headers.
    pub sections: Vec<Shdr>,
    /// (d_tag, d_val) up to DT_NULL; empty for a file without PT_DYNAMIC.
    pub dynamic: Vec<(i64, u64)>,
    /// The DT_NEEDED names (resolved through DT_STRTAB when possible).
    pub needed: Vec<String>,
    /// File bytes mapped executable that are not code, one phrase per
    /// executable PT_LOAD that maps some (see `foreign_exec_bytes`).
    pub exec_page_problems: Vec<String>,
}

/// Reads integers of the file's width and byte order, bounds-checked.
struct Rd<'a> {
    b: &'a [u8],
    be: bool,
    is64: bool,
}

impl Rd<'_> {
    fn bytes<const N: usize>(&self, off: u64) -> Result<[u8; N], String> {
        let start = usize::try_from(off).map_err(|_| "offset out of range".to_string())?;
        start
            .checked_add(N)
            .and_then(|end| self.b.get(start..end))
            .map(|s| s.try_into().unwrap())
            .ok_or_else(|| format!("truncated ELF file (reading {N} bytes at offset {off:#x})"))
    }
    fn u16(&self, off: u64) -> Result<u16, String> {
        let a = self.bytes::<2>(off)?;
        Ok(if self.be { u16::from_be_bytes(a) } else { u16::from_le_bytes(a) })
    }
    fn u32(&self, off: u64) -> Result<u32, String> {
        let a = self.bytes::<4>(off)?;
        Ok(if self.be { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
    }
    fn u64(&self, off: u64) -> Result<u64, String> {
        let a = self.bytes::<8>(off)?;
        Ok(if self.be { u64::from_be_bytes(a) } else { u64::from_le_bytes(a) })
    }
    /// An address/offset/size field: 8 bytes in ELF64, 4 in ELF32.
    fn word(&self, off: u64) -> Result<u64, String> {
        if self.is64 { self.u64(off) } else { self.u32(off).map(u64::from) }
    }
    /// A signed word (d_tag).
    fn sword(&self, off: u64) -> Result<i64, String> {
        if self.is64 { self.u64(off).map(|v| v as i64) } else { self.u32(off).map(|v| i64::from(v as i32)) }
    }
    fn cstr(&self, off: u64) -> Option<String> {
        let start = usize::try_from(off).ok()?;
        let rest = self.b.get(start..)?;
        let end = rest.iter().position(|&c| c == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }
}

impl Elf {
    pub fn parse(b: &[u8]) -> Result<Elf, String> {
        if b.len() < 16 || &b[..4] != b"\x7fELF" {
            return Err("not an ELF file".into());
        }
        let is64 = match b[4] {
            1 => false,
            2 => true,
            c => return Err(format!("unknown ELF class {c}")),
        };
        let be = match b[5] {
            1 => false,
            2 => true,
            d => return Err(format!("unknown ELF data encoding {d}")),
        };
        let r = Rd { b, be, is64 };
        // Offsets of the fields that differ between ELF32 and ELF64.
        let (phoff_at, shoff_at, sizes_at) = if is64 { (0x20, 0x28, 0x34) } else { (0x1c, 0x20, 0x28) };
        let e_type = r.u16(0x10)?;
        let machine = r.u16(0x12)?;
        let phoff = r.word(phoff_at)?;
        let shoff = r.word(shoff_at)?;
        let phentsize = u64::from(r.u16(sizes_at + 2)?);
        let phnum = u64::from(r.u16(sizes_at + 4)?);
        let shentsize = u64::from(r.u16(sizes_at + 6)?);
        let shnum = u64::from(r.u16(sizes_at + 8)?);
        let shstrndx = u64::from(r.u16(sizes_at + 10)?);

        let mut phdrs = Vec::new();
        if phnum > 0 && phentsize < if is64 { 56 } else { 32 } {
            return Err(format!("program header entries too small ({phentsize} bytes)"));
        }
        for i in 0..phnum {
            let h = phoff + i * phentsize;
            let p_type = r.u32(h)?;
            let ph = if is64 {
                // type, flags, offset, vaddr, paddr, filesz, memsz, align
                Phdr {
                    p_type,
                    flags: r.u32(h + 4)?,
                    offset: r.u64(h + 8)?,
                    vaddr: r.u64(h + 16)?,
                    filesz: r.u64(h + 32)?,
                }
            } else {
                // type, offset, vaddr, paddr, filesz, memsz, flags, align
                Phdr {
                    p_type,
                    offset: r.word(h + 4)?,
                    vaddr: r.word(h + 8)?,
                    filesz: r.word(h + 16)?,
                    flags: r.u32(h + 24)?,
                }
            };
            phdrs.push(ph);
        }

        // Sections: name offset, type, then (flags, addr, offset, size) as words.
        let mut raw = Vec::new();
        if shoff != 0 && shnum > 0 {
            if shentsize < if is64 { 64 } else { 40 } {
                return Err(format!("section header entries too small ({shentsize} bytes)"));
            }
            let w = if is64 { 8 } else { 4 };
            for i in 0..shnum {
                let h = shoff + i * shentsize;
                raw.push((r.u32(h)?, r.u32(h + 4)?, r.word(h + 8)?, r.word(h + 8 + 2 * w)?, r.word(h + 8 + 3 * w)?));
            }
        }
        let strtab_off = raw.get(shstrndx as usize).map(|s| s.3);
        let sections: Vec<Shdr> = raw
            .iter()
            .map(|&(name, sh_type, flags, offset, size)| Shdr {
                name: strtab_off.and_then(|o| r.cstr(o + u64::from(name))).unwrap_or_default(),
                sh_type,
                flags,
                offset,
                size,
            })
            .collect();

        let mut dynamic = Vec::new();
        if let Some(d) = phdrs.iter().find(|p| p.p_type == PT_DYNAMIC) {
            let ent = if is64 { 16 } else { 8 };
            for i in 0..d.filesz / ent {
                let at = d.offset + i * ent;
                let tag = r.sword(at)?;
                if tag == DT_NULL {
                    break;
                }
                dynamic.push((tag, r.word(at + ent / 2)?));
            }
        }
        // DT_STRTAB holds an address: find the file offset through PT_LOAD.
        let strtab = dynamic.iter().find(|d| d.0 == DT_STRTAB).and_then(|&(_, addr)| {
            phdrs
                .iter()
                .find(|p| p.p_type == PT_LOAD && addr >= p.vaddr && addr < p.vaddr + p.filesz)
                .map(|p| addr - p.vaddr + p.offset)
        });
        let needed = dynamic
            .iter()
            .filter(|d| d.0 == DT_NEEDED)
            .map(|&(_, v)| strtab.and_then(|s| r.cstr(s + v)).unwrap_or_else(|| format!("<name at {v:#x}>")))
            .collect();

        // The file's own tables: the ELF header with the program headers
        // (read by the kernel) and the section header table (by tools).
        let ehsize = if is64 { 64 } else { 52 };
        let tables = [
            ("ELF header", 0..ehsize),
            ("program headers", phoff..phoff.saturating_add(phnum * phentsize)),
            ("section headers", shoff..shoff.saturating_add(shnum * shentsize)),
        ];
        let exec_page_problems = foreign_exec_bytes(b, machine, &phdrs, &sections, &tables);
        Ok(Elf { is64, big_endian: be, e_type, machine, phdrs, sections, dynamic, needed, exec_page_problems })
    }

    /// Bytes of code: the executable PT_LOADs' file sizes. Equal to .text
    /// when that is the only executable section, as in picoq's programs;
    /// the only measure of code left once the section headers are gone.
    pub fn code_bytes(&self) -> u64 {
        self.phdrs.iter().filter(|p| p.p_type == PT_LOAD && p.flags & PF_X != 0).map(|p| p.filesz).sum()
    }

    /// Total size of the sections called `name` (None: no such section).
    pub fn section_size(&self, name: &str) -> Option<u64> {
        let mut found = None;
        for s in self.sections.iter().filter(|s| s.name == name) {
            *found.get_or_insert(0) += s.size;
        }
        found
    }

    /// "ELF64 little-endian x86-64 PIE".
    pub fn describe(&self) -> String {
        let machine = match self.machine {
            3 => "i386".to_string(),
            8 => "MIPS".to_string(),
            40 => "ARM".to_string(),
            62 => "x86-64".to_string(),
            183 => "AArch64".to_string(),
            243 => "RISC-V".to_string(),
            m => format!("machine {m}"),
        };
        let kind = match self.e_type {
            ET_DYN if self.has(PT_INTERP) => "PIE (dynamic)",
            ET_DYN => "static PIE",
            ET_EXEC if self.has(PT_INTERP) => "non-PIE (dynamic)",
            ET_EXEC => "static non-PIE",
            _ => "not an executable",
        };
        let (bits, order) = (if self.is64 { 64 } else { 32 }, if self.big_endian { "big" } else { "little" });
        format!("ELF{bits} {order}-endian {machine} {kind}")
    }

    fn has(&self, p_type: u32) -> bool {
        self.phdrs.iter().any(|p| p.p_type == p_type)
    }

    /// Lazy binding is off: DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW.
    pub fn bind_now(&self) -> bool {
        self.dynamic.iter().any(|&(tag, v)| {
            tag == DT_BIND_NOW || (tag == DT_FLAGS && v & DF_BIND_NOW != 0) || (tag == DT_FLAGS_1 && v & DF_1_NOW != 0)
        })
    }

    /// Hardening problems, each a short phrase; empty when the program is a
    /// static PIE with RELRO, a non-executable stack and W^X segments.
    pub fn hardening_problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        match self.e_type {
            ET_DYN => {}
            ET_EXEC => v.push("not PIE (ET_EXEC)".to_string()),
            t => v.push(format!("not an executable (e_type {t})")),
        }
        if self.has(PT_INTERP) {
            v.push("has PT_INTERP (dynamically linked)".into());
        }
        for n in &self.needed {
            v.push(format!("DT_NEEDED {n}"));
        }
        if !self.has(PT_GNU_RELRO) {
            v.push("no PT_GNU_RELRO".into());
        }
        match self.phdrs.iter().find(|p| p.p_type == PT_GNU_STACK) {
            None => v.push("no PT_GNU_STACK".into()),
            Some(p) if p.flags & PF_X != 0 => v.push("executable stack".into()),
            Some(_) => {}
        }
        for p in self.phdrs.iter().filter(|p| p.p_type == PT_LOAD && p.flags & PF_W != 0 && p.flags & PF_X != 0) {
            v.push(format!("writable+executable LOAD at {:#x}", p.vaddr));
        }
        v.extend(self.exec_page_problems.iter().cloned());
        v
    }
}

/// For every executable PT_LOAD: the file bytes in the pages it maps,
/// [page_floor(p_offset), page_ceil(p_offset + p_filesz)) clipped to the
/// file, that are not code. The kernel maps whole pages, so whatever shares
/// a page with the code in the file (ELF and program headers, .rodata,
/// GOT, .data, .comment, the section table) is mapped executable with it;
/// past the end of the file it maps zeros, which are not the file's bytes.
///
/// With section headers, a byte is code when it is in one of the
/// segment's SHF_EXECINSTR sections; a byte in no section (padding
/// between or after the code) passes when it is zero or, on x86, the
/// int3 trap lld fills code pages with; a byte in any other section or in
/// the file's own tables fails. Without section headers (stripped after
/// the link), the segment's own file bytes count as code, unless they hold
/// the ELF header or program headers, and every other byte in its pages
/// fails, whatever its value.
fn foreign_exec_bytes(
    b: &[u8],
    machine: u16,
    phdrs: &[Phdr],
    sections: &[Shdr],
    tables: &[(&str, std::ops::Range<u64>)],
) -> Vec<String> {
    let file_len = b.len() as u64;
    let is_x86 = machine == 3 || machine == 62;
    let mut problems = Vec::new();
    for p in phdrs.iter().filter(|p| p.p_type == PT_LOAD && p.flags & PF_X != 0) {
        let seg = p.offset..p.offset.saturating_add(p.filesz);
        let mapped = (p.offset / PAGE * PAGE)..seg.end.div_ceil(PAGE).saturating_mul(PAGE).min(file_len);
        // What each byte of `mapped` is: None when it is code.
        let what = |at: u64| -> Option<&str> {
            if let Some((name, _)) = tables.iter().find(|(_, r)| !r.is_empty() && r.contains(&at)) {
                return Some(name);
            }
            if sections.is_empty() {
                return if seg.contains(&at) { None } else { Some("bytes outside the code segment") };
            }
            match sections.iter().find(|s| s.file_range().contains(&at)) {
                Some(s) if s.flags & SHF_ALLOC != 0 && s.flags & SHF_EXECINSTR != 0 && seg.contains(&at) => None,
                Some(s) if s.name.is_empty() => Some("an unnamed section"),
                Some(s) => Some(s.name.as_str()),
                None => match b[at as usize] {
                    0 => None,
                    X86_TRAP if is_x86 => None,
                    _ => Some("bytes in no section"),
                },
            }
        };
        // The first run of foreign bytes, and how many there are in all.
        let mut first: Option<(u64, u64, &str)> = None;
        let mut count = 0u64;
        for at in mapped.clone() {
            let Some(name) = what(at) else { continue };
            count += 1;
            match &mut first {
                None => first = Some((at, at + 1, name)),
                Some((_, end, n)) if *end == at && *n == name => *end += 1,
                Some(_) => {}
            }
        }
        if let Some((start, end, name)) = first {
            problems.push(format!(
                "{NON_CODE_MAPPED}: LOAD at {:#x} maps {count} B (first {start:#x}..{end:#x}: {name})",
                p.vaddr
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn check_host_like(e: &Elf) {
        assert!(!e.phdrs.is_empty());
        assert!(e.phdrs.iter().any(|p| p.p_type == PT_LOAD && p.flags & PF_X != 0));
        assert!(e.code_bytes() > 0);
        if !e.sections.is_empty() {
            assert!(e.section_size(".text").unwrap() > 0);
        }
    }

    #[test]
    fn parses_this_test_binary() {
        // Always present: the host's own (dynamically linked) test program.
        let e = Elf::parse(&std::fs::read(std::env::current_exe().unwrap()).unwrap()).unwrap();
        check_host_like(&e);
        assert_eq!(e.is64, cfg!(target_pointer_width = "64"));
        assert_eq!(e.big_endian, cfg!(target_endian = "big"));
        if e.has(PT_INTERP) {
            assert!(e.hardening_problems().iter().any(|p| p.contains("PT_INTERP")));
        }
    }

    #[test]
    fn parses_built_qmqpc() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let p = crate::target_dir(root).join("x86_64-unknown-linux-musl/release/qmqpc");
        let Ok(bytes) = std::fs::read(&p) else {
            eprintln!("skipped: {} is not built (cargo xtask size builds it)", p.display());
            return;
        };
        let e = Elf::parse(&bytes).unwrap();
        check_host_like(&e);
        assert!(e.is64 && !e.big_endian);
        assert_eq!(e.machine, 62); // EM_X86_64
        assert_eq!(e.e_type, ET_DYN, "static-pie");
        assert!(e.needed.is_empty());
        // The code last, cut right after it, no section headers
        // (targets/x86_64-linux-musl-ld).
        assert!(e.sections.is_empty());
        let last = e.phdrs.iter().filter(|p| p.p_type == PT_LOAD).max_by_key(|p| p.offset).unwrap();
        assert_eq!(last.flags & PF_X, PF_X);
        assert_eq!(last.offset % PAGE, 0);
        assert_eq!(last.offset + last.filesz, bytes.len() as u64);
        assert!(e.hardening_problems().is_empty(), "{:?}", e.hardening_problems());
        assert_eq!(e.describe(), "ELF64 little-endian x86-64 static PIE");
    }

    /// A hand-made 32-bit big-endian (MIPS) executable: header, four program
    /// headers, a dynamic table with DT_NEEDED, and three sections.
    fn mips32be() -> Vec<u8> {
        fn put16(b: &mut [u8], at: usize, v: u16) {
            b[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        fn put32(b: &mut [u8], at: usize, v: u32) {
            b[at..at + 4].copy_from_slice(&v.to_be_bytes());
        }
        let mut b = vec![0u8; 0x200];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 1; // ELFCLASS32
        b[5] = 2; // ELFDATA2MSB
        b[6] = 1;
        put16(&mut b, 0x10, ET_EXEC);
        put16(&mut b, 0x12, 8); // EM_MIPS
        put32(&mut b, 0x14, 1);
        put32(&mut b, 0x1c, 0x34); // e_phoff
        put32(&mut b, 0x20, 0x100); // e_shoff
        put16(&mut b, 0x28, 0x34); // e_ehsize
        put16(&mut b, 0x2a, 32); // e_phentsize
        put16(&mut b, 0x2c, 4); // e_phnum
        put16(&mut b, 0x2e, 40); // e_shentsize
        put16(&mut b, 0x30, 4); // e_shnum
        put16(&mut b, 0x32, 3); // e_shstrndx
        // Program headers: type, offset, vaddr, paddr, filesz, memsz, flags, align.
        let ph = |b: &mut [u8], i: usize, t: u32, off: u32, vaddr: u32, sz: u32, flags: u32| {
            let h = 0x34 + i * 32;
            put32(b, h, t);
            put32(b, h + 4, off);
            put32(b, h + 8, vaddr);
            put32(b, h + 12, vaddr);
            put32(b, h + 16, sz);
            put32(b, h + 20, sz);
            put32(b, h + 24, flags);
        };
        ph(&mut b, 0, PT_LOAD, 0, 0x400000, 0x200, PF_X | PF_W | 4);
        ph(&mut b, 1, PT_DYNAMIC, 0xb4, 0x4000b4, 0x20, 4 | PF_W);
        ph(&mut b, 2, PT_GNU_STACK, 0, 0, 0, 4 | PF_W | PF_X);
        ph(&mut b, 3, PT_INTERP, 0x1f0, 0x4001f0, 4, 4);
        // Dynamic table at 0xb4: DT_NEEDED "libc.so" (strtab at 0xe0),
        // DT_STRTAB, DT_FLAGS BIND_NOW, DT_NULL.
        for (i, (tag, val)) in
            [(DT_NEEDED, 1u32), (DT_STRTAB, 0x4000e0), (DT_FLAGS, DF_BIND_NOW as u32), (0, 0)].into_iter().enumerate()
        {
            put32(&mut b, 0xb4 + i * 8, tag as u32);
            put32(&mut b, 0xb8 + i * 8, val);
        }
        b[0xe1..0xe8].copy_from_slice(b"libc.so");
        // Section name table at 0x1a0, after the section headers: "\0.text\0.bss\0.shstrtab\0".
        let names = b"\0.text\0.bss\0.shstrtab\0";
        b[0x1a0..0x1a0 + names.len()].copy_from_slice(names);
        // Sections: name, type, flags, addr, offset, size, link, info, align, entsize.
        let sh = |b: &mut [u8], i: usize, name: u32, t: u32, off: u32, size: u32| {
            let h = 0x100 + i * 40;
            put32(b, h, name);
            put32(b, h + 4, t);
            put32(b, h + 16, off);
            put32(b, h + 20, size);
        };
        sh(&mut b, 1, 1, 1, 0x40, 0x1234);
        sh(&mut b, 2, 7, 8, 0, 0x56);
        sh(&mut b, 3, 12, 3, 0x1a0, names.len() as u32);
        b
    }

    #[test]
    fn parses_hand_made_elf32_big_endian() {
        let e = Elf::parse(&mips32be()).unwrap();
        assert!(!e.is64 && e.big_endian);
        assert_eq!((e.e_type, e.machine), (ET_EXEC, 8));
        assert_eq!(e.phdrs.len(), 4);
        assert_eq!(e.phdrs[0].vaddr, 0x400000);
        assert_eq!(e.phdrs[0].flags, 7);
        assert_eq!(e.section_size(".text"), Some(0x1234));
        assert_eq!(e.section_size(".bss"), Some(0x56));
        assert_eq!(e.section_size(".data"), None);
        assert_eq!(e.needed, ["libc.so"]);
        assert!(e.bind_now());
        let problems = e.hardening_problems();
        for want in [
            "not PIE",
            "PT_INTERP",
            "DT_NEEDED libc.so",
            "no PT_GNU_RELRO",
            "executable stack",
            "writable+executable",
            "non-code file bytes mapped executable: LOAD at 0x400000 maps 512 B (first 0x0..0x34: ELF header)",
        ] {
            assert!(problems.iter().any(|p| p.contains(want)), "{want} missing from {problems:?}");
        }
        assert_eq!(problems.len(), 7);
        assert_eq!(e.describe(), "ELF32 big-endian MIPS non-PIE (dynamic)");
    }

    /// A hand-made ELF64 little-endian x86-64 static PIE: `loads` are
    /// (flags, file offset, file size) PT_LOADs, plus PT_GNU_RELRO and a
    /// non-executable PT_GNU_STACK; `sections` are (name, flags, offset,
    /// size), written with a name table at the end of the file when not
    /// empty. The file is `len` bytes; bytes not in a table are `fill`.
    fn x86_64_pie(len: usize, fill: u8, loads: &[(u32, u64, u64)], sections: &[(&str, u64, u64, u64)]) -> Vec<u8> {
        fn put(b: &mut [u8], at: u64, v: &[u8]) {
            b[at as usize..at as usize + v.len()].copy_from_slice(v);
        }
        let mut b = vec![fill; len];
        b[..64].fill(0);
        put(&mut b, 0, b"\x7fELF\x02\x01\x01");
        put(&mut b, 0x10, &ET_DYN.to_le_bytes());
        put(&mut b, 0x12, &62u16.to_le_bytes());
        put(&mut b, 0x20, &64u64.to_le_bytes()); // e_phoff
        put(&mut b, 0x36, &56u16.to_le_bytes()); // e_phentsize
        let phdrs: Vec<(u32, u32, u64, u64)> = loads
            .iter()
            .map(|&(flags, off, size)| (PT_LOAD, flags, off, size))
            .chain([(PT_GNU_RELRO, 4, 0, 0), (PT_GNU_STACK, 4 | PF_W, 0, 0)])
            .collect();
        put(&mut b, 0x38, &(phdrs.len() as u16).to_le_bytes());
        for (i, &(t, flags, off, size)) in phdrs.iter().enumerate() {
            let h = 64 + 56 * i as u64;
            b[h as usize..h as usize + 56].fill(0);
            put(&mut b, h, &t.to_le_bytes());
            put(&mut b, h + 4, &flags.to_le_bytes());
            put(&mut b, h + 8, &off.to_le_bytes());
            put(&mut b, h + 16, &(off + PAGE).to_le_bytes()); // vaddr
            put(&mut b, h + 32, &size.to_le_bytes());
            put(&mut b, h + 40, &size.to_le_bytes());
        }
        if !sections.is_empty() {
            // [names][null section, the sections, .shstrtab] at the end.
            let mut names = vec![0u8];
            let mut at_name = Vec::new();
            for name in sections.iter().map(|s| s.0).chain([".shstrtab"]) {
                at_name.push(names.len() as u32);
                names.extend_from_slice(name.as_bytes());
                names.push(0);
            }
            let shnum = sections.len() as u64 + 2;
            let shoff = len as u64 - shnum * 64;
            let names_at = shoff - names.len() as u64;
            put(&mut b, names_at, &names);
            put(&mut b, 0x28, &shoff.to_le_bytes());
            put(&mut b, 0x3a, &64u16.to_le_bytes());
            put(&mut b, 0x3c, &(shnum as u16).to_le_bytes());
            put(&mut b, 0x3e, &(shnum as u16 - 1).to_le_bytes());
            b[shoff as usize..].fill(0);
            let all = sections.iter().copied().chain([(".shstrtab", 0, names_at, names.len() as u64)]);
            for (i, (_, flags, off, size)) in all.enumerate() {
                let h = shoff + 64 * (i as u64 + 1);
                put(&mut b, h, &at_name[i].to_le_bytes());
                put(&mut b, h + 4, &1u32.to_le_bytes()); // SHT_PROGBITS
                put(&mut b, h + 8, &flags.to_le_bytes());
                put(&mut b, h + 24, &off.to_le_bytes());
                put(&mut b, h + 32, &size.to_le_bytes());
            }
        }
        b
    }

    const R: u32 = 4;
    const RX: u32 = 4 | PF_X;
    const RW: u32 = 4 | PF_W;
    const AX: u64 = SHF_ALLOC | SHF_EXECINSTR;

    fn exec_problems(b: &[u8]) -> Vec<String> {
        let e = Elf::parse(b).unwrap();
        let all = e.hardening_problems();
        assert_eq!(all, e.exec_page_problems, "only the executable pages may be at fault");
        all
    }

    #[test]
    fn code_last_and_cut_after_it_maps_only_code() {
        // picoq's x86_64 layout: [headers, .rodata][RELRO, .data] in one
        // page, the code from 0x1000 to the end of the file, no sections.
        let b = x86_64_pie(0x1000 + 0x350c, 0x90, &[(R, 0, 0xd44), (RW, 0xd48, 0x1cc), (RX, 0x1000, 0x350c)], &[]);
        assert_eq!(exec_problems(&b), Vec::<String>::new());
        assert_eq!(Elf::parse(&b).unwrap().code_bytes(), 0x350c);
    }

    #[test]
    fn code_last_with_the_section_table_after_it_fails() {
        // The same link before the cut: .comment, .shstrtab and the
        // section headers share the last code page.
        let b = x86_64_pie(
            0x4800,
            0x90,
            &[(R, 0, 0xd44), (RW, 0xd48, 0x1cc), (RX, 0x1000, 0x350c)],
            &[(".rodata", SHF_ALLOC, 0x428, 0x90f), (".text", AX, 0x1000, 0x350c), (".comment", 0x30, 0x450c, 0x9c)],
        );
        let p = exec_problems(&b);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("first 0x450c..0x45a8: .comment"), "{p:?}");
        // Every byte from the end of the code to the end of the file.
        assert!(p[0].contains(&format!("maps {} B", 0x4800 - 0x450c)), "{p:?}");
    }

    #[test]
    fn code_sharing_pages_with_headers_and_data_fails() {
        // lld's -z noseparate-code: the code's first page holds the ELF
        // header and .rodata, its last page RELRO and .data.
        let b = x86_64_pie(0x4430, 0x90, &[(R, 0, 0xd44), (RX, 0xd50, 0x350c), (RW, 0x4260, 0x1cc)], &[]);
        let p = exec_problems(&b);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("first 0x0..0x40: ELF header"), "{p:?}");
        // All of the file but the code: headers and .rodata before it,
        // RELRO and .data after it.
        assert!(p[0].contains(&format!("maps {} B", 0x4430 - 0x350c)), "{p:?}");
        // The same with section headers: the header is still first.
        let b = x86_64_pie(
            0x4430,
            0,
            &[(R, 0, 0xd44), (RX, 0xd50, 0x350c), (RW, 0x4260, 0x1cc)],
            &[
                (".rodata", SHF_ALLOC, 0x200, 0xb44),
                (".text", AX, 0xd50, 0x350c),
                (".got", SHF_ALLOC | 1, 0x4260, 0x1cc),
            ],
        );
        let p = exec_problems(&b);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("first 0x0..0x40: ELF header"), "{p:?}");
    }

    #[test]
    fn code_padded_to_its_pages_passes_and_data_in_the_padding_fails() {
        // -z separate-code: the code alone in its pages, the rest of its
        // last page int3 or zero, in no section.
        let sections = [
            (".rodata", SHF_ALLOC, 0x200, 0xb44),
            (".text", AX, 0x1000, 0x350c),
            (".data", SHF_ALLOC | 1, 0x5000, 0x1cc),
        ];
        let loads = [(R, 0, 0xd44), (RX, 0x1000, 0x350c), (RW, 0x5000, 0x1cc)];
        let mut b = x86_64_pie(0x6000, 0, &loads, &sections);
        b[0x450c..0x5000].fill(X86_TRAP);
        assert_eq!(exec_problems(&b), Vec::<String>::new());
        // A byte of the padding that is neither trap nor zero is foreign.
        b[0x4fff] = 0x90;
        let p = exec_problems(&b);
        assert!(p[0].contains("maps 1 B") && p[0].contains("0x4fff..0x5000: bytes in no section"), "{p:?}");
        // .data starting inside the last code page is foreign, zero or not.
        let sections = [
            (".rodata", SHF_ALLOC, 0x200, 0xb44),
            (".text", AX, 0x1000, 0x350c),
            (".data", SHF_ALLOC | 1, 0x4800, 0x1cc),
        ];
        let b = x86_64_pie(0x6000, 0, &loads, &sections);
        let p = exec_problems(&b);
        assert!(p[0].contains("0x4800..0x49cc: .data"), "{p:?}");
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        assert!(Elf::parse(b"not an elf").is_err());
        let mut b = mips32be();
        b[4] = 3;
        assert!(Elf::parse(&b).is_err());
        let b = mips32be();
        assert!(Elf::parse(&b[..0x60]).unwrap_err().contains("truncated"));
    }
}
