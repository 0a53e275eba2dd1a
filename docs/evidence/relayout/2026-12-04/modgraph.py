import os,re,sys,collections
root=sys.argv[1] if len(sys.argv)>1 else '.'
edges=collections.Counter(); files=collections.defaultdict(set)
for base in ('src','include/subliminal'):
    for dp,_,fs in os.walk(os.path.join(root,base)):
        for f in fs:
            p=os.path.join(dp,f); rel=os.path.relpath(p,os.path.join(root,base))
            mod=rel.split('/')[0] if '/' in rel else '(top)'
            for line in open(p,errors='ignore'):
                m=re.match(r'#include\s+"subliminal/([^/"]+)/',line)
                if m and m.group(1)!=mod:
                    edges[(mod,m.group(1))]+=1; files[(mod,m.group(1))].add(rel)
mods=sorted({a for a,b in edges}|{b for a,b in edges})
for a in mods:
    outs=sorted({b for (x,b) in edges if x==a})
    print(f"{a:12s} -> {' '.join(outs)}")
print(len(mods),'modules',len(edges),'arrows')
# cycles
adj=collections.defaultdict(set)
for a,b in edges: adj[a].add(b)
import itertools
for a in mods:
    for b in adj[a]:
        if a in adj[b] and a<b: print('2-cycle',a,b, sorted(files[(a,b)]), sorted(files[(b,a)]))
