import json,subprocess,sys
root=sys.argv[1]; n=int(sys.argv[2]) if len(sys.argv)>2 else 12
out=subprocess.check_output('ctags -R --output-format=json --fields=+ne --c++-kinds=f --languages=C++ -o - src',shell=True,cwd=root,text=True)
fs=[]
for l in out.splitlines():
    t=json.loads(l)
    if t.get('kind')!='function' or 'end' not in t or t['name'].startswith('__anon'): continue
    scope=t.get('scope','')
    name=(scope.split('::')[-1]+'::' if t.get('scopeKind') in ('class','struct') else '')+t['name']
    fs.append((t['end']-t['line']+1,name,t['path']))
fs.sort(reverse=True)
for L,nm,p in fs[:n]: print(f"{L:4d}  {nm}  ({p})")
print('functions:',len(fs),' over 100 lines:',sum(1 for f in fs if f[0]>100),' over 150:',sum(1 for f in fs if f[0]>150))
