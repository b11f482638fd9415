"""CLI layer: the self-contained HTML report of ``scan --report FILE`` and ``eval --report FILE``.

One file that opens offline in any browser: styles and scripts inline, thumbnails embedded as
base64 JPEGs, and a Content-Security-Policy that forbids the page any request (``default-src
'none'``; images only from ``data:``). It is written as the records stream:

* the head (CSS, the script, the page's skeleton and the run's settings: thresholds, face mode)
  when the first batch arrives (a run that scores nothing leaves an existing file untouched);
* per batch, each thumbnail in a ``<script type="text/plain" id="fdt-tN">`` element, then the
  batch's records in a ``<script type="application/json" class="fakedet-batch">`` element (every
  ``<`` escaped, so no text can close the element), flushed;
* at :meth:`HtmlReport.close`, the summary and the closing tags.

The script runs once the document has been parsed, so a file cut anywhere after the head (an
interrupted or a running scan) still shows every batch written whole; a batch cut short is left
out and the page says that the report is incomplete. The script parses the records (not the
thumbnails), draws the counts per verdict and a histogram of the scores with the thresholds,
and renders a table of 200 rows per page, sortable by score or path and filterable by verdict;
only the rows on the page get their thumbnail (a data: URI made from its element on demand),
so 20,000 images open quickly. The view is kept in the URL's fragment (``#sort=p_desc&show=
fake,uncertain&page=2``), and ``#click=ID,ID`` clicks the named controls once the page is drawn
(the tests drive the page's own controls with it).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import json
import math
from typing import IO, Optional, Sequence

from fakedet._version import __version__
from fakedet.data.writers import REORDER, path_fields, utf8_all

THUMBNAIL = 256  # the longest side of the thumbnails a report embeds, in px
PAGE_ROWS = 200  # table rows per page


class ReportWriteError(OSError):
    """The report file could not be opened or written (a full disk, say)."""


def _clean(obj):
    """``obj`` with non-finite floats as None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def script_json(obj) -> str:
    """JSON text that is safe inside a ``<script>`` element: ASCII only, valid UTF-8 throughout
    (a file name that is not UTF-8 as the text ``\\xHH``, as json records write it; no lone
    surrogate escapes) and no ``<`` at all, so neither ``</script>`` nor ``<!--`` can end or
    upset the element."""
    text = json.dumps(utf8_all(_clean(obj)), ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _round(p):
    """A score as the records print it (:func:`fakedet.data.writers.score_text`): six decimals,
    below 0.001 three significant digits."""
    from fakedet.data.writers import score_text

    return None if p is None else float(score_text(float(p)))


def outcome(truth: int, model_label: Optional[str], error: Optional[str]) -> str:
    """An eval image's outcome by the model's own verdict: ``fp`` (a real image labelled fake),
    ``fn`` (a fake labelled real), ``tp``, ``tn``, ``unc`` (uncertain) or ``error``."""
    if error is not None or model_label is None:
        return "error"
    if model_label == "uncertain":
        return "unc"
    fake = model_label == "fake"
    if truth:
        return "tp" if fake else "fn"
    return "fp" if fake else "tn"


def _weights_sha256(path) -> str:
    """The SHA-256 of the weights file a report's verdicts came from ("" when unknown or
    unreadable: a report is never lost for it)."""
    if not path:
        return ""
    try:
        from fakedet.model.checkpoint import sha256

        return sha256(path)
    except OSError:
        return ""


def _in_short(det) -> list:
    """The weights' plain-words lines of `fakedet info` (:func:`fakedet.cli.info.in_short`): from
    the detector's metadata, else its weights file's header (neither hashed nor counted, as
    `describe` would); [] where they have none or cannot be read (a report is never lost for it)."""
    try:
        from fakedet.cli.info import in_short_of
        from fakedet.model import checkpoint as ckpt

        meta = getattr(det, "meta", None)
        if meta is None:
            path = getattr(det, "weights_path", None)
            if not path:
                return []
            meta = ckpt.read_meta(path)
        return in_short_of({"evaluation": meta.evaluation, "training": meta.training},
                           where="listed by fakedet info")
    except Exception:  # noqa: BLE001
        return []


class HtmlReport:
    """Writes a report to ``target`` (a path, opened and emptied at the first batch, or an open
    text stream) batch by batch: :meth:`add` per batch of Results, :meth:`close` at the end.

    ``kind`` is ``"scan"`` or ``"eval"``; ``detector`` gives the thresholds (``cutoffs``,
    ``face_cutoffs``, ``faces``) and is described in the header (``device``, ``weights_path``).
    """

    def __init__(self, target, kind: str = "scan", detector=None, title: Optional[str] = None):
        self.target = target
        self.stream: Optional[IO[str]] = None if isinstance(target, str) else target
        self.kind = kind
        self.count = 0
        self.closed = False
        self.started = False
        det = detector
        cutoffs = list(getattr(det, "cutoffs", None) or (0.5, 0.5))
        faces = bool(getattr(det, "faces", False))
        self.meta = {
            "kind": kind,
            "title": title or f"fakedet {kind} report",
            "created": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "version": __version__,
            "weights": str(getattr(det, "weights_path", "") or ""),
            "weights_sha256": _weights_sha256(getattr(det, "weights_path", None)),
            "device": str(getattr(det, "device", "") or ""),
            "faces": faces,
            "threshold": cutoffs[0],
            "real_below": cutoffs[1],
            "face_threshold": list(det.face_cutoffs)[0] if faces else None,
            "face_real_below": list(det.face_cutoffs)[1] if faces else None,
            "face_expert": faces and getattr(det, "expert", None) is not None,
            # which face expert exactly: its file's SHA-256, as the weights' (persona, a helpline)
            "face_expert_sha256": _weights_sha256(det.expert[2]) if faces and len(getattr(det, "expert", None) or ()) > 2
            else "",
            "page_rows": PAGE_ROWS,
            # how often the verdicts are wrong, as `fakedet info` opens (an editor given the
            # report alone had no README or model card to find it in)
            "in_short": _in_short(det),
        }

    # -- writing -------------------------------------------------------------------------

    def emit(self, text: str) -> None:
        """Writes ``text``, opening (and emptying) the file at the first write."""
        try:
            if self.stream is None:
                self.stream = open(self.target, "w", encoding="utf-8", newline="\n")
            self.stream.write(text)
        except OSError as exc:
            if isinstance(exc, ReportWriteError):
                raise
            raise ReportWriteError(exc.errno, f"cannot write the report {self.target}: "
                                              f"{exc.strerror or exc}") from exc

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise ReportWriteError(exc.errno, f"cannot write the report {self.target}: "
                                              f"{exc.strerror or exc}") from exc

    def start(self) -> None:
        """Writes the head and the run's settings, once."""
        if not self.started:
            self.started = True
            self.emit(_HEAD.replace("__TITLE__", _html_text(self.meta["title"]))
                        + f'<script type="application/json" id="fakedet-meta">{script_json(self.meta)}</script>\n')

    def add(self, results: Sequence, truth: Optional[Sequence[int]] = None,
            set_name: Optional[str] = None) -> None:
        """Appends one batch of Results (``truth``: each one's true label, 0 real or 1 fake, for
        an eval; ``set_name``: the data set they belong to) and flushes."""
        if self.closed or not results:
            return
        self.start()
        parts, rows = [], []
        for k, r in enumerate(results):
            i = self.count + k
            d = r.to_dict()
            d.update(path_fields(d["path"]))  # a name that is not UTF-8: \xHH text and path_bytes
            d["p_fake"] = _round(d.get("p_fake"))
            if "p_whole" in d:
                d["p_whole"] = _round(d["p_whole"])
            if d.get("faces"):
                d["faces"] = [{k: _round(v) if k in ("p_fake", "p_network", "p_expert") else v
                               for k, v in f.items()} for f in d["faces"]]
            d["i"] = i
            model_label = getattr(r, "model_label", None)
            if model_label is not None and model_label != d.get("label"):
                d["model_label"] = model_label
            d.pop("framed", None)  # in the record as false too: the page keeps only a true one
            d.pop("animated", None)
            if getattr(r, "framed", False):  # wide plain margins: perhaps a screenshot, to be cropped
                d["framed"] = True
            if getattr(r, "animated", False):
                d["animated"] = True
            if truth is not None:
                d["truth"] = int(truth[k])
                d["outcome"] = outcome(d["truth"], model_label, r.error)
            if set_name is not None:
                d["set"] = set_name
            thumb = getattr(r, "thumbnail", None)
            if thumb and thumb.get("sha256"):  # which file exactly was scored
                d["sha256"] = thumb["sha256"]
            if thumb and thumb.get("jpeg"):
                d["tw"], d["th"] = int(thumb["width"]), int(thumb["height"])
                parts.append(f'<script type="text/plain" id="fdt-t{i}">'
                             f'{base64.b64encode(thumb["jpeg"]).decode("ascii")}</script>\n')
            rows.append(d)
        parts.append(f'<script type="application/json" class="fakedet-batch">{script_json(rows)}</script>\n')
        self.emit("".join(parts))
        self.count += len(results)
        self.flush()

    def abandon(self) -> None:
        """Closes a report that could not be written (its file is left as it is), without
        writing more; nothing is raised."""
        self.closed = True
        if self.stream is not None and isinstance(self.target, str):
            with contextlib.suppress(OSError):
                self.stream.close()

    def close(self, summary: Optional[str] = None, complete: bool = True) -> None:
        """Writes the summary (text shown at the top; ``complete=False`` for an interrupted
        run), ends the document and closes a file it opened; safe to call twice. A report that
        got no batch writes nothing (a path given is not created)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.started:
                info = {"summary": summary, "complete": bool(complete), "records": self.count}
                self.emit(f'<script type="application/json" id="fakedet-summary">{script_json(info)}'
                            '</script>\n</body>\n</html>\n')
                self.flush()
        finally:
            if self.stream is not None and isinstance(self.target, str):
                try:
                    self.stream.close()
                except OSError as exc:
                    raise ReportWriteError(exc.errno, f"cannot write the report {self.target}: "
                                                      f"{exc.strerror or exc}") from exc


def _html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_CSS = """
:root{--fake:#d0342c;--unc:#e0a100;--real:#2f6fb5;--err:#777;--line:#ddd;font-family:system-ui,
-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;background:#fff}
body{margin:0;padding:16px 20px}h1{font-size:20px;margin:0 0 4px}
.meta{color:#666;font-size:12px;margin-bottom:10px}
.warn{background:#fff4d6;border:1px solid #e0c060;padding:6px 10px;margin:8px 0;font-size:13px}
pre.summary{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto;margin:8px 0;white-space:pre-wrap;overflow-wrap:anywhere}
.hist text.tlabel{paint-order:stroke;stroke:#fff;stroke-width:3px;stroke-linejoin:round}
.counts{display:flex;gap:10px;flex-wrap:wrap;margin:8px 0}
.count{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:70px}
.count b{display:block;font-size:20px}.count span{font-size:12px;color:#555}
.count.fake b{color:var(--fake)}.count.uncertain b{color:var(--unc)}.count.real b{color:var(--real)}
.count.error b{color:var(--err)}
svg.hist{border:1px solid var(--line);background:#fcfcfc;max-width:100%}
.controls{display:flex;gap:14px;align-items:center;flex-wrap:wrap;margin:10px 0;font-size:14px}
.controls label{white-space:nowrap}button{font:inherit;padding:2px 8px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:4px 6px;text-align:left;vertical-align:top}
th.sortable{cursor:pointer;text-decoration:underline dotted}
td.num{font-variant-numeric:tabular-nums;white-space:nowrap}
.thumb{position:relative;display:inline-block;line-height:0}
.thumb img{display:block;max-width:160px;max-height:160px}
.nothumb{display:inline-block;width:64px;height:48px;background:#eee;color:#999;font-size:10px;
line-height:48px;text-align:center}
.box{position:absolute;box-sizing:border-box;border:2px solid var(--real)}
.box.fake{border-color:var(--fake)}.box.uncertain{border-color:var(--unc)}.box.crop{border:2px dashed #c0c}
.box span{position:absolute;left:0;top:-14px;font-size:10px;line-height:12px;background:rgba(0,0,0,.6);
color:#fff;padding:0 2px;white-space:nowrap}
.verdict{font-weight:600}.verdict.fake{color:var(--fake)}.verdict.uncertain{color:var(--unc)}
.verdict.real{color:var(--real)}.verdict.error{color:var(--err)}
.path{word-break:break-all;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.hash{word-break:break-all;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:10px;color:#666}
.errtext{color:#a00}.note{color:#666}ul.ev{margin:2px 0 0 0;padding-left:16px;color:#444}
.outcome.fp,.outcome.fn{color:var(--fake);font-weight:600}
.pager{margin:8px 0;font-size:13px}
"""

# Records what goes wrong (uncaught errors, failed loads, console.error and console.warn calls,
# and requests the Content-Security-Policy blocked) in <html data-errors="[...]">.
_GUARD = """
(function(){var errs=[],root=document.documentElement;
function note(m){errs.push(String(m));root.setAttribute('data-errors',JSON.stringify(errs));}
window.addEventListener('error',function(e){note(e.message||('failed to load '+((e.target&&(e.target.src||e.target.href))||'?')));},true);
window.addEventListener('unhandledrejection',function(e){note('unhandled rejection: '+e.reason);});
document.addEventListener('securitypolicyviolation',function(e){note('blocked request: '+e.blockedURI);});
['error','warn'].forEach(function(k){var f=console[k];console[k]=function(){note(k+': '+[].join.call(arguments,' '));return f.apply(console,arguments);};});
})();
"""

def _js_class(chars: str) -> str:
    """A regular expression's character class (``a-b`` ranges kept) as JavaScript source: every
    character as ``\\uHHHH``, so that the page's script holds none of them itself."""
    return "".join(c if c == "-" else f"\\u{ord(c):04x}" for c in chars)


_JS = r"""
(function(){
"use strict";
var T0=performance.now(),root=document.documentElement;
var VERDICTS=['fake','uncertain','real','error'];
var OUTCOME={fp:'false positive',fn:'false negative',tp:'true positive',tn:'true negative',unc:'uncertain',error:'error'};
var RANK={fp:0,fn:1,error:2,unc:3,tp:4,tn:5};
var meta={},rows=[],summary=null,lost=0,state={};
function $(id){return document.getElementById(id);}
function el(tag,cls,text){var e=document.createElement(tag);if(cls)e.className=cls;if(text!=null)e.textContent=text;return e;}
function fmt(p){return p==null?'':thr(p);}  // as the records print a score
// a name as the scan's summary writes it: a character that would show it in another order (a
// right-to-left override, U+202E, shows one name as another) as \uHHHH
function shown(s){return s.replace(/\t/g,'\\t').replace(/\n/g,'\\n').replace(/\r/g,'\\r')
 .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f__REORDER__]/g,function(c){
 var h=c.charCodeAt(0);return h<256?'\\x'+('0'+h.toString(16)).slice(-2):'\\u'+('000'+h.toString(16)).slice(-4);});}
function thr(p){if(p==null)return '?';if(p>=1e-3||p===0)return p.toFixed(6);var d=3,q=Number(p.toPrecision(3));
 while(q>=1e-3&&d<17){d++;q=Number(p.toPrecision(d));}  // as score_text: 0.0009996, never 0.001
 return q>=1e-4?String(q):q.toExponential().replace(/e([+-])(\d)$/,'e$10$2');}
function verdict(r){return r.error!=null?'error':(r.label||'error');}
function dec(t){try{return decodeURIComponent(t);}catch(e){return t;}}
function parseHash(){var h={},s=location.hash.replace(/^#/,'');
 s.split('&').forEach(function(kv){if(!kv)return;var i=kv.indexOf('=');var k=i<0?kv:kv.slice(0,i);h[dec(k)]=i<0?'':dec(kv.slice(i+1));});return h;}
function load(){
 try{meta=JSON.parse($('fakedet-meta').textContent);}catch(e){meta={};}
 var bs=document.querySelectorAll('script.fakedet-batch');
 for(var b=0;b<bs.length;b++){var part;try{part=JSON.parse(bs[b].textContent);}catch(e){lost++;continue;}
  for(var k=0;k<part.length;k++)rows.push(part[k]);}
 var s=$('fakedet-summary');if(s){try{summary=JSON.parse(s.textContent);}catch(e){summary=null;}}
}
function counts(){var c={fake:0,uncertain:0,real:0,error:0,fp:0,fn:0};
 rows.forEach(function(r){c[verdict(r)]++;if(r.outcome==='fp'||r.outcome==='fn')c[r.outcome]++;});return c;}
function drawCounts(c){var box=$('counts');box.textContent='';
 var items=[['total',rows.length]].concat(VERDICTS.map(function(v){return [v,c[v]];}));
 if(meta.kind==='eval')items.push(['fp',c.fp],['fn',c.fn]);
 var names={total:'images',fake:'fake',uncertain:'uncertain',real:'real',error:'errors',fp:'false positives',fn:'false negatives'};
 items.forEach(function(it){var d=el('div','count '+it[0]);d.id='count-'+it[0];d.appendChild(el('b',null,String(it[1])));d.appendChild(el('span',null,names[it[0]]));box.appendChild(d);});}
function drawHist(){
 var NB=50,W=700,H=170,L=40,B=24,TOP=12,pw=560,ph=H-B-TOP;
 var ev=meta.kind==='eval',cats=ev?['real image','fake image']:['real','uncertain','fake'];
 var col=ev?{'real image':'#3b7dd8','fake image':'#d0342c'}:{real:'#2f6fb5',uncertain:'#e0a100',fake:'#d0342c'};
 var bins=[];for(var i=0;i<NB;i++){var o={};cats.forEach(function(c){o[c]=0;});bins.push(o);}
 rows.forEach(function(r){if(r.p_fake==null)return;var b=Math.min(NB-1,Math.max(0,Math.floor(r.p_fake*NB)));
  var c=ev?(r.truth?'fake image':'real image'):(r.label in col?r.label:'real');bins[b][c]++;});
 var max=1;bins.forEach(function(o){var t=0;cats.forEach(function(c){t+=o[c];});if(t>max)max=t;});
 var NS='http://www.w3.org/2000/svg',svg=document.createElementNS(NS,'svg');
 svg.setAttribute('class','hist');svg.setAttribute('id','hist');svg.setAttribute('width',W);svg.setAttribute('height',H);svg.setAttribute('viewBox','0 0 '+W+' '+H);
 function add(tag,at,text){var e=document.createElementNS(NS,tag);for(var k in at)e.setAttribute(k,at[k]);if(text!=null)e.textContent=text;svg.appendChild(e);return e;}
 bins.forEach(function(o,i){var y=TOP+ph;cats.forEach(function(c){if(!o[c])return;var h=o[c]/max*ph;y-=h;
  add('rect',{x:L+i*pw/NB+0.5,y:y,width:pw/NB-1,height:h,fill:col[c],'class':'bar'});});});
 add('line',{x1:L,y1:TOP+ph,x2:L+pw,y2:TOP+ph,stroke:'#444'});add('line',{x1:L,y1:TOP,x2:L,y2:TOP+ph,stroke:'#444'});
 [0,0.25,0.5,0.75,1].forEach(function(t){add('text',{x:L+t*pw,y:H-8,'font-size':10,'text-anchor':'middle'},String(t));});
 add('text',{x:L-4,y:TOP+8,'font-size':10,'text-anchor':'end'},String(max));add('text',{x:L-4,y:TOP+ph,'font-size':10,'text-anchor':'end'},'0');
 add('text',{x:L+pw/2,y:H-0.5,'font-size':9,'text-anchor':'middle',fill:'#666'},'p_fake');
 var nl=0;
 function tline(p,label,dash,cls){if(p==null)return;var x=L+p*pw,right=p>0.7;
  add('line',{x1:x,y1:TOP-4,x2:x,y2:TOP+ph,stroke:'#000','stroke-width':1.2,'stroke-dasharray':dash,'class':'threshold '+cls});
  add('text',{x:right?x-3:x+3,y:TOP+6+11*nl++,'font-size':9,'text-anchor':right?'end':'start','class':'tlabel'},label+' '+thr(p));}
 tline(meta.threshold,'fake \u2265','', 'fake');
 if(meta.real_below!=null&&meta.real_below<meta.threshold)tline(meta.real_below,'real <','4 3','real');
 if(meta.faces){tline(meta.face_threshold,'face: fake \u2265','1 2','face-fake');
  if(meta.face_real_below<meta.face_threshold)tline(meta.face_real_below,'face: real <','1 2','face-real');}
 cats.forEach(function(c,k){add('rect',{x:L+pw+12,y:TOP+k*14,width:10,height:10,fill:col[c]});
  add('text',{x:L+pw+26,y:TOP+9+k*14,'font-size':10},c);});
 $('histwrap').appendChild(svg);}
function filtered(){
 var show=state.show,mis=state.mistakes;
 var out=rows.filter(function(r){return show.indexOf(verdict(r))>=0&&(!mis||r.outcome==='fp'||r.outcome==='fn');});
 var s=state.sort;
 function pv(r,dflt){return r.p_fake==null?dflt:r.p_fake;}
 if(s==='p_desc')out.sort(function(a,b){return pv(b,-1)-pv(a,-1)||a.i-b.i;});
 else if(s==='p_asc')out.sort(function(a,b){return pv(a,2)-pv(b,2)||a.i-b.i;});
 else if(s==='path')out.sort(function(a,b){return a.path<b.path?-1:a.path>b.path?1:a.i-b.i;});
 else if(s==='mistakes')out.sort(function(a,b){var ra=RANK[a.outcome],rb=RANK[b.outcome];ra=ra==null?9:ra;rb=rb==null?9:rb;
  if(ra!==rb)return ra-rb;if(a.outcome==='fp')return pv(b,-1)-pv(a,-1)||a.i-b.i;if(a.outcome==='fn')return pv(a,2)-pv(b,2)||a.i-b.i;return a.i-b.i;});
 else out.sort(function(a,b){return a.i-b.i;});
 return out;}
function thumbCell(r){var td=el('td','thumbcell');var t=$('fdt-t'+r.i);
 if(!t){td.appendChild(el('span','nothumb',r.error!=null?'':'no image'));return td;}
 var wrap=el('div','thumb'),img=el('img');img.alt='';img.decoding='async';
 img.src='data:image/jpeg;base64,'+t.textContent.trim();wrap.appendChild(img);
 if(r.cropped&&r.tw&&r.th){var c=r.cropped,q=el('div','box crop');q.style.left=(100*c[0]/r.tw)+'%';
  q.style.top=(100*c[1]/r.th)+'%';q.style.width=(100*(c[2]-c[0])/r.tw)+'%';q.style.height=(100*(c[3]-c[1])/r.th)+'%';
  q.title='the picture scored';wrap.appendChild(q);}
 (r.faces||[]).forEach(function(f,n){var b=f.box;if(!b||!r.tw||!r.th)return;
  var fv=f.p_fake==null?'real':f.p_fake>=(meta.face_threshold==null?meta.threshold:meta.face_threshold)?'fake':
   f.p_fake<(meta.face_real_below==null?meta.real_below:meta.face_real_below)?'real':'uncertain';
  var d=el('div','box '+fv);d.style.left=(100*b[0]/r.tw)+'%';d.style.top=(100*b[1]/r.th)+'%';
  d.style.width=(100*(b[2]-b[0])/r.tw)+'%';d.style.height=(100*(b[3]-b[1])/r.th)+'%';
  d.title='face '+(n+1)+': p_fake '+fmt(f.p_fake);d.appendChild(el('span',null,String(n+1)));wrap.appendChild(d);});
 td.appendChild(wrap);return td;}
function rowEl(r){var v=verdict(r),tr=el('tr','row');
 tr.setAttribute('data-i',r.i);tr.setAttribute('data-verdict',v);tr.setAttribute('data-p',r.p_fake==null?'':r.p_fake);
 if(r.outcome)tr.setAttribute('data-outcome',r.outcome);
 tr.appendChild(el('td','num',String(r.i+1)));tr.appendChild(thumbCell(r));
 var td=el('td');td.appendChild(el('div','path',shown(r.path)));
 if(r.sha256)td.appendChild(el('div','hash','sha256 '+r.sha256));
 if(r.set!=null)td.appendChild(el('div','note','set: '+r.set));
 if(r.error!=null)td.appendChild(el('div','errtext','error: '+r.error));
 if(r.note)td.appendChild(el('div','note',r.note));
 if(r.evidence&&r.evidence.length){var ul=el('ul','ev');r.evidence.forEach(function(e){
  ul.appendChild(el('li',null,(e.kind||'?')+(e.says?' says '+e.says:'')+(e.detail?': '+e.detail:'')));});
  td.appendChild(el('div','note','provenance evidence'+(r.label_by==='evidence'?' (decided the verdict)':'')+':'));td.appendChild(ul);}
 tr.appendChild(td);
 var vt=el('td');vt.appendChild(el('span','verdict '+v,v));
 if(r.model_label&&r.model_label!==r.label)vt.appendChild(el('div','note','model: '+r.model_label));
 if(r.cropped)vt.appendChild(el('div','note','scored the picture inside its margins (dashed box; a screenshot\u2019s app, a border, a letterbox, a meme\u2019s caption bands, a story\u2019s blurred or gradient backdrop, or a plain backdrop)'));
 if(r.framed)vt.appendChild(el('div','note','wide margins (a screenshot\u2019s app, a border, a story\u2019s backdrop), scored whole: crop to the picture and scan again'));
 if(r.animated)vt.appendChild(el('div','note','first frame only'));tr.appendChild(vt);
 tr.appendChild(el('td','num',fmt(r.p_fake)));
 var ex=el('td','num');if(r.p_whole!=null)ex.appendChild(el('div',null,'whole image '+fmt(r.p_whole)));
 (r.faces||[]).forEach(function(f,n){ex.appendChild(el('div',null,'face '+(n+1)+' '+fmt(f.p_fake)));});tr.appendChild(ex);
 if(meta.kind==='eval'){var oc=el('td');oc.appendChild(el('div',null,r.truth==null?'':(r.truth?'fake':'real')));
  if(r.outcome)oc.appendChild(el('div','outcome '+r.outcome,OUTCOME[r.outcome]||r.outcome));tr.appendChild(oc);}
 return tr;}
function writeHash(){var h='sort='+state.sort+'&show='+state.show.join(',')+'&page='+(state.page+1)+(state.mistakes?'&mistakes=1':'');
 if(history.replaceState)history.replaceState(null,'','#'+h);}
function render(){
 var list=filtered(),n=meta.page_rows||200,pages=Math.max(1,Math.ceil(list.length/n));
 state.page=Math.min(Math.max(0,state.page),pages-1);
 var body=$('rows');body.textContent='';var frag=document.createDocumentFragment();
 list.slice(state.page*n,state.page*n+n).forEach(function(r){frag.appendChild(rowEl(r));});body.appendChild(frag);
 $('shown').textContent=list.length+' of '+rows.length+' shown';$('shown').setAttribute('data-n',list.length);
 ['pageinfo','pageinfo2'].forEach(function(id){$(id).textContent='page '+(state.page+1)+' of '+pages;});
 ['prev','prev2'].forEach(function(id){$(id).disabled=state.page===0;});['next','next2'].forEach(function(id){$(id).disabled=state.page>=pages-1;});
 $('sort').value=state.sort;VERDICTS.forEach(function(v){$('show-'+v).checked=state.show.indexOf(v)>=0;});
 if($('mistakes'))$('mistakes').checked=!!state.mistakes;
 root.setAttribute('data-rows',body.children.length);}
function controls(){
 $('sort').addEventListener('change',function(){state.sort=this.value;state.page=0;writeHash();render();});
 VERDICTS.forEach(function(v){$('show-'+v).addEventListener('change',function(){var s=state.show.filter(function(x){return x!==v;});
  if(this.checked)s.push(v);state.show=VERDICTS.filter(function(x){return s.indexOf(x)>=0;});state.page=0;writeHash();render();});});
 if($('mistakes'))$('mistakes').addEventListener('change',function(){state.mistakes=this.checked;state.page=0;writeHash();render();});
 function step(d){state.page+=d;writeHash();render();window.scrollTo(0,$('table').offsetTop);}
 ['prev','prev2'].forEach(function(id){$(id).addEventListener('click',function(){step(-1);});});
 ['next','next2'].forEach(function(id){$(id).addEventListener('click',function(){step(1);});});
 document.querySelectorAll('th.sortable').forEach(function(th){th.addEventListener('click',function(){
  var k=th.getAttribute('data-sort');state.sort=k==='path'?'path':(state.sort==='p_desc'?'p_asc':'p_desc');state.page=0;writeHash();render();});});
 window.addEventListener('hashchange',function(){fromHash();render();});}
function fromHash(){var h=parseHash(),sorts=['input','p_desc','p_asc','path'];if(meta.kind==='eval')sorts.push('mistakes');
 state.sort=sorts.indexOf(h.sort)>=0?h.sort:(meta.kind==='eval'?'mistakes':'input');
 state.show=h.show==null?VERDICTS.slice():VERDICTS.filter(function(v){return h.show.split(',').indexOf(v)>=0;});
 state.page=Math.max(0,(parseInt(h.page,10)||1)-1);state.mistakes=h.mistakes==='1';return h;}
function start(){
 load();
 document.title=meta.title||document.title;$('title').textContent=meta.title||'fakedet report';
 var m=[];if(meta.created)m.push('made '+meta.created);if(meta.version)m.push('fakedet '+meta.version);
 if(meta.weights)m.push('weights '+meta.weights+(meta.weights_sha256?' (sha256 '+meta.weights_sha256+')':''));if(meta.device)m.push(meta.device);if(meta.faces)m.push('face mode');
 var rule=meta.real_below<meta.threshold?'fake at p_fake \u2265 '+thr(meta.threshold)+', real below '+thr(meta.real_below)+', uncertain in between (and where only the score of a picture scored with its wide margins reaches fake)':'fake at p_fake \u2265 '+thr(meta.threshold);
 if(meta.faces)rule+='; images with a face: fake at \u2265 '+thr(meta.face_threshold)+(meta.face_real_below<meta.face_threshold?', real below '+thr(meta.face_real_below):'');
 if(meta.faces)rule+=meta.face_expert?' (faces scored with the face expert'+(meta.face_expert_sha256?', sha256 '+meta.face_expert_sha256:'')+')':' (faces scored by the network alone)';
 m.push(rule);$('meta').textContent=m.join(' \u00b7 ');
 if(meta.in_short&&meta.in_short.length){var is=$('inshort');is.textContent='How often these weights\u2019 verdicts are wrong'+(meta.faces?' (the scan without --faces)':'')+', as fakedet info says it:\n'+meta.in_short.join('\n')+(meta.faces?'\nThis report\u2019s verdicts are face mode\u2019s (--faces), at thresholds of their own; how often those are wrong is not counted here: the model card (weights/MODEL_CARD.md in the source, \u201cIn plain words\u201d) has face mode\u2019s figures.':'');is.hidden=false;}
 var w=[];if(!summary)w.push('This report is incomplete: the run was interrupted or is still running; it shows the '+rows.length+' records written so far.');
 else if(summary.complete===false)w.push('The run stopped before its end: '+rows.length+' records.');
 if(lost)w.push(lost+' batch'+(lost>1?'es':'')+' of records cut short '+(lost>1?'were':'was')+' left out.');
 var byEv=rows.filter(function(r){return r.model_label&&r.model_label!==r.label;}).length;
 if(byEv&&meta.kind==='eval')w.push(byEv+' verdict'+(byEv>1?'s':'')+' came from provenance evidence, not the model: the counts below include '+(byEv>1?'them':'it')+'; the figures and the false positives and negatives use the model\u2019s own verdicts.');
 if(w.length){var wd=$('warn');wd.textContent=w.join(' ');wd.hidden=false;}
 if(summary&&summary.summary){$('summary').textContent=summary.summary;$('summary').hidden=false;}
 if(meta.kind==='eval'){var o=document.createElement('option');o.value='mistakes';o.textContent='false positives and negatives first';$('sort').appendChild(o);
  $('mistakes-wrap').hidden=false;var th=el('th',null,'truth / outcome');$('headrow').appendChild(th);
  $('legend').textContent='false positive: a real image labelled fake; false negative: a fake labelled real (by the model\u2019s own verdict); then come errors, then uncertain verdicts.';}
 drawCounts(counts());drawHist();
 var h=fromHash();controls();render();
 if(h.click)h.click.split(',').forEach(function(id){var e=$(id);if(e)e.click();else console.error('no control '+id);});
 root.setAttribute('data-render-ms',Math.round(performance.now()-T0));root.setAttribute('data-ready','1');}
if(document.readyState==='loading')document.addEventListener('DOMContentLoaded',start);else start();
})();
"""

_HEAD = ("""<!DOCTYPE html>
<html lang="en" data-errors="[]">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="fakedet">
<title>__TITLE__</title>
<style>""" + _CSS + """</style>
<script>""" + _GUARD + """</script>
<script>""" + _JS.replace("__REORDER__", _js_class(REORDER)) + """</script>
</head>
<body>
<noscript><p><b>This report draws its table with JavaScript, which is off here.</b> Every record is in
this file's JSON data (the <code>fakedet-batch</code> elements in its source).</p></noscript>
<h1 id="title">__TITLE__</h1>
<div class="meta" id="meta"></div>
<div class="warn" id="warn" hidden></div>
<pre class="summary" id="summary" hidden></pre>
<div class="counts" id="counts"></div>
<div id="histwrap"></div>
<div class="note" id="verdicts"><b>fake</b>: the model found evidence of manipulation or generation.
<b>uncertain</b>: the score lies where real photos of some sources also fall; most fakes get this verdict too.
<b>real</b>: no evidence found, which is not proof that the image is genuine.
p_fake is the model&#8217;s score, not the chance that the image is fake. A verdict is a pointer for a person to
check, never proof; images of kinds the model was not trained on are often missed (README, model card).</div>
<pre class="summary" id="inshort" hidden></pre>
<div class="note" id="legend"></div>
<div class="controls">
<label>sort <select id="sort"><option value="input">input order</option><option value="p_desc">p_fake, highest first</option><option value="p_asc">p_fake, lowest first</option><option value="path">path</option></select></label>
<span>show:
<label><input type="checkbox" id="show-fake" checked> fake</label>
<label><input type="checkbox" id="show-uncertain" checked> uncertain</label>
<label><input type="checkbox" id="show-real" checked> real</label>
<label><input type="checkbox" id="show-error" checked> errors</label></span>
<label id="mistakes-wrap" hidden><input type="checkbox" id="mistakes"> only false positives and negatives</label>
<span id="shown"></span>
</div>
<div class="pager"><button id="prev">&larr; previous</button> <span id="pageinfo"></span> <button id="next">next &rarr;</button></div>
<table id="table"><thead><tr id="headrow"><th>#</th><th>image</th><th class="sortable" data-sort="path" id="th-path">path</th><th>verdict</th><th class="sortable" data-sort="p" id="th-p">p_fake</th><th>scores</th></tr></thead>
<tbody id="rows"></tbody></table>
<div class="pager"><button id="prev2">&larr; previous</button> <span id="pageinfo2"></span> <button id="next2">next &rarr;</button></div>
""")
