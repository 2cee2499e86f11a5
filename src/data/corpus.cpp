#include "data/corpus.h"
#include "data/corpus_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "io/files.h"
#include "data/sha256.h"

namespace fs = std::filesystem;

namespace moe {

// ---------------------------------------------------------------- UTF-8

size_t utf8_invalid_offset(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // continuation byte, C0/C1 (overlong) or F5..FF
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; k++) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

uint64_t utf8_chars(std::string_view s) {
  uint64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// ---------------------------------------------------------------- cleaning

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_space(s.front()) || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (is_space(s.back()) || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split_lines(std::string_view s) {
  std::vector<std::string_view> lines;
  size_t b = 0;
  while (b <= s.size()) {
    size_t e = s.find('\n', b);
    if (e == std::string_view::npos) e = s.size();
    lines.push_back(s.substr(b, e - b));
    b = e + 1;
  }
  if (!lines.empty() && lines.back().empty()) lines.pop_back();  // text ending in '\n'
  return lines;
}

// Appends s with every run of whitespace turned into one space.
void append_collapsed(std::string& out, std::string_view s) {
  bool space = false;
  for (char c : s) {
    if (is_space(c) || c == '\n') {
      space = true;
      continue;
    }
    if (space && !out.empty() && out.back() != ' ' && out.back() != '\n') out += ' ';
    space = false;
    out += c;
  }
}

std::string clean_plain_text(std::string_view raw) {
  if (raw.substr(0, 3) == "\xEF\xBB\xBF") raw.remove_prefix(3);
  std::string norm;  // CRLF and lone CR -> LF
  norm.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); i++) {
    if (raw[i] == '\r') {
      norm += '\n';
      if (i + 1 < raw.size() && raw[i + 1] == '\n') i++;
    } else {
      norm += raw[i];
    }
  }
  std::string out;
  out.reserve(norm.size());
  int pending_blank = 0;
  for (std::string_view line : split_lines(norm)) {
    while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
    if (line.empty()) {
      pending_blank = 1;
      continue;
    }
    if (!out.empty()) out += pending_blank ? "\n\n" : "\n";
    pending_blank = 0;
    out += line;
  }
  return out;
}

std::vector<CorpusDocument> clean_kjv(std::string_view raw) {
  std::vector<CorpusDocument> docs;
  std::string book;
  for (std::string_view line : split_lines(raw)) {
    std::string_view t = trim(line);
    if (t.empty()) continue;
    const bool verse = line.size() > t.size() && t[0] >= '0' && t[0] <= '9';  // "  12 text"
    if (!verse) {
      // Chapter heading "Genesis 1", "1 Kings 3", "Song of Solomon 2": the book is
      // all before the last space.
      size_t sp = t.rfind(' ');
      std::string name(sp == std::string_view::npos ? t : t.substr(0, sp));
      if (name != book) {
        book = name;
        docs.push_back({"bible-kjv/" + name, ""});
      }
      continue;
    }
    if (docs.empty()) docs.push_back({"bible-kjv", ""});  // verses before any heading
    size_t k = 0;
    while (k < t.size() && t[k] >= '0' && t[k] <= '9') k++;  // the verse number
    std::string& text = docs.back().text;
    if (!text.empty()) text += '\n';
    append_collapsed(text, trim(t.substr(k)));
  }
  std::erase_if(docs, [](const CorpusDocument& d) { return d.text.empty(); });
  return docs;
}

std::string clean_austen(std::string_view raw) {
  std::vector<std::string> paras;
  std::string cur;
  auto flush = [&] {
    std::string p;
    for (char c : cur)
      if (c != '_' && c != '*') p += c;
    std::string q;
    append_collapsed(q, trim(p));
    cur.clear();
    if (!q.empty()) paras.push_back(std::move(q));
  };
  for (std::string_view line : split_lines(raw)) {
    std::string_view t = trim(line);
    if (t.empty()) {
      flush();
      continue;
    }
    if (!cur.empty()) cur += ' ';
    cur += t;
  }
  flush();
  std::string out;
  for (const std::string& p : paras) {
    if (p == "A NOTE ON THE TEXT") break;  // the editors' afterword (Northanger Abbey)
    const bool note = p.front() == '[' && p.back() == ']' && p.find("edition") != std::string::npos;
    if (note) continue;
    if (!out.empty()) out += '\n';
    out += p;
  }
  return out;
}

// ---------------------------------------------------------------- Debian corpus

CmdResult run_command(const std::string& cmd) {
  CmdResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run: " + cmd);
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int st = ::pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

bool executable(const char* path) { return ::access(path, X_OK) == 0; }

CorpusSource source_of(const std::string& name, std::string_view raw) {
  return {name, raw.size(), sha256_hex(raw)};
}

CorpusInput corpus_kjv() {
  const char* kBible = "/usr/bin/bible";
  if (!executable(kBible))
    throw std::runtime_error(
        "default corpus: /usr/bin/bible not found: install the Debian package bible-kjv (apt-get install bible-kjv) "
        "or give --input");
  // -l: line width; wide enough that no verse is wrapped.
  CmdResult r = run_command(std::string(kBible) + " -l100000 gen1:1-rev22:21 2>/dev/null");
  if (r.status != 0 || r.out.size() < 1000000)
    throw std::runtime_error("default corpus: `bible -l100000 gen1:1-rev22:21` failed (exit " + std::to_string(r.status) +
                             ", " + std::to_string(r.out.size()) +
                             " bytes): reinstall the Debian packages bible-kjv and bible-kjv-text");
  CorpusInput in;
  in.name = "bible-kjv";
  in.kind = "debian";
  in.sources.push_back(source_of("bible-kjv", r.out));
  in.documents = clean_kjv(r.out);
  return in;
}

// janeaustenr's order (austen_books()): publication order.
constexpr const char* kAustenBooks[] = {"sensesensibility", "prideprejudice", "mansfieldpark",
                                        "emma",             "northangerabbey", "persuasion"};

CorpusInput corpus_austen() {
  const char* kRscript = "/usr/bin/Rscript";
  if (!executable(kRscript))
    throw std::runtime_error(
        "default corpus: /usr/bin/Rscript not found: install the Debian package r-cran-janeaustenr "
        "(apt-get install r-cran-janeaustenr, which brings r-base-core) or give --input");
  // One R process prints every novel, each after a line "\001<name>"; useBytes
  // writes UTF-8 whatever the locale (else R escapes "£" as "<U+00A3>").
  std::string script = "if (!requireNamespace('janeaustenr', quietly = TRUE)) quit(status = 3); ";
  script += "for (b in c(";
  for (size_t i = 0; i < std::size(kAustenBooks); i++) script += std::string(i ? "," : "") + "'" + kAustenBooks[i] + "'";
  script += ")) { writeLines(paste0('\\001', b)); writeLines(enc2utf8(getExportedValue('janeaustenr', b)), useBytes = TRUE) }";
  CmdResult r = run_command(std::string(kRscript) + " --vanilla -e \"" + script + "\" 2>/dev/null");
  if (r.status == 3)
    throw std::runtime_error(
        "default corpus: the R package janeaustenr is missing: install the Debian package r-cran-janeaustenr "
        "(apt-get install r-cran-janeaustenr) or give --input");
  if (r.status != 0)
    throw std::runtime_error("default corpus: Rscript failed reading janeaustenr (exit " + std::to_string(r.status) +
                             "): reinstall the Debian package r-cran-janeaustenr");
  CorpusInput in;
  in.name = "janeaustenr";
  in.kind = "debian";
  std::string_view all = r.out;
  for (size_t i = 0; i < std::size(kAustenBooks); i++) {
    const std::string marker = std::string("\001") + kAustenBooks[i] + "\n";
    size_t b = all.find(marker);
    if (b == std::string_view::npos)
      throw std::runtime_error(std::string("default corpus: janeaustenr printed no text for ") + kAustenBooks[i]);
    b += marker.size();
    size_t e = all.find('\001', b);
    std::string_view raw = all.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b);
    const std::string name = std::string("janeaustenr/") + kAustenBooks[i];
    in.sources.push_back(source_of(name, raw));
    std::string text = clean_austen(raw);
    if (text.size() < 100000) throw std::runtime_error("default corpus: janeaustenr's " + name + " is too short");
    in.documents.push_back({name, std::move(text)});
  }
  return in;
}

std::vector<CorpusInput> corpus_default() {
  std::vector<CorpusInput> v;
  v.push_back(corpus_kjv());
  v.push_back(corpus_austen());
  return v;
}

// ---------------------------------------------------------------- user files

namespace {

void add_file(CorpusInput& in, const std::string& path) {
  std::string raw = file_read(path);
  size_t nul = raw.find('\0');
  if (nul != std::string::npos)
    throw std::runtime_error(path + ": binary file (NUL byte at offset " + std::to_string(nul) +
                             "); only UTF-8 text is accepted");
  size_t bad = utf8_invalid_offset(raw);
  if (bad != std::string_view::npos)
    throw std::runtime_error(path + ": not UTF-8 text (invalid byte 0x" +
                             [&] {
                               char h[8];
                               std::snprintf(h, sizeof h, "%02X", unsigned(static_cast<unsigned char>(raw[bad])));
                               return std::string(h);
                             }() +
                             " at offset " + std::to_string(bad) + "); convert it to UTF-8 or leave it out");
  in.sources.push_back(source_of(path, raw));
  std::string text = clean_plain_text(raw);
  if (!text.empty()) in.documents.push_back({path, std::move(text)});
}

bool hidden(const fs::path& p) {
  const std::string n = p.filename().string();
  return !n.empty() && n[0] == '.' && n != "." && n != "..";
}

}  // namespace

CorpusInput corpus_from_path(const std::string& path, const std::string& exclude) {
  std::error_code ec;
  fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw std::runtime_error("input " + path + ": no such file or directory");
  CorpusInput in;
  in.name = path;
  if (fs::is_regular_file(st)) {
    in.kind = "file";
    add_file(in, path);
    return in;
  }
  if (!fs::is_directory(st)) throw std::runtime_error("input " + path + ": not a regular file or directory");
  in.kind = "dir";
  fs::path skip;
  if (!exclude.empty() && fs::exists(exclude)) skip = fs::weakly_canonical(exclude);
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end;
  if (ec) throw std::runtime_error("input " + path + ": cannot read directory: " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw std::runtime_error("input " + path + ": cannot read directory: " + ec.message());
    const fs::path& p = it->path();
    if (hidden(p) || (!skip.empty() && fs::weakly_canonical(p) == skip)) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file()) files.push_back(p.string());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& f : files) add_file(in, f);
  return in;
}

}  // namespace moe
