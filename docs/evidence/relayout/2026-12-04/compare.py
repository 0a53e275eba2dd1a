import hashlib,json,os,sys
A,B=sys.argv[1],sys.argv[2]
DROP={"timings","resumed","resumed_from","finished","started","seconds","git_revision","tokens_per_s","elapsed_s","prefill_s","decode_s","new_tokens_per_s","pid","command_line","subliminal_version","previous_stages","updated"}
def comp(j):
    if isinstance(j,dict): return {k:comp(v) for k,v in j.items() if k not in DROP}
    if isinstance(j,list): return [comp(v) for v in j]
    return j
def files(r):
    out={}
    for dp,_,fs in os.walk(r):
        for f in fs:
            p=os.path.join(dp,f); out[os.path.relpath(p,r)]=p
    return out
fa,fb=files(A),files(B)
sha=lambda p: hashlib.sha256(open(p,'rb').read()).hexdigest()
same=[];diff=[];only=sorted(set(fa)^set(fb))
for k in sorted(set(fa)&set(fb)):
    (same if sha(fa[k])==sha(fb[k]) else diff).append(k)
# recorded artifacts: every stage.json's outputs
arts=0; arts_same=0
for k in fa:
    if k.endswith('stage.json'):
        rec=json.load(open(fa[k])); d=os.path.dirname(k)
        for o,h in rec.get('outputs',{}).items():
            arts+=1; kb=os.path.join(d,o)
            if kb in fb and sha(fb[kb])==h: arts_same+=1
print(f"files: {len(fa)} vs {len(fb)}; byte-identical {len(same)}; differing {len(diff)}; in one only {len(only)}")
print(f"artifacts recorded in stage.json outputs: {arts}; identical sha256 in the other run: {arts_same}")
for k in diff:
    note=''
    try:
        if k.endswith('.json'):
            note='equal without timing fields' if comp(json.load(open(fa[k])))==comp(json.load(open(fb[k]))) else 'DIFFERS beyond timings'
        elif k.endswith('.jsonl'):
            la=[comp(json.loads(l)) for l in open(fa[k]) if l.strip()]; lb=[comp(json.loads(l)) for l in open(fb[k]) if l.strip()]
            note='equal without timing fields' if la==lb else 'DIFFERS beyond timings'
        else: note='text (log/timings)'
    except Exception as e: note='?'+str(e)[:40]
    print(' ',k,'-',note)
for k in only: print('  only in one:',k)
